# Copyright 2026 Adobe. All rights reserved.
# This file is licensed to you under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License. You may obtain a copy
# of the License at http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software distributed under
# the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR REPRESENTATIONS
# OF ANY KIND, either express or implied. See the License for the specific language
# governing permissions and limitations under the License.

"""Internal helpers for creating JSON Formula exceptions."""

from __future__ import annotations

from .exceptions import EvaluationError, FunctionError, SyntaxError, TypeError


def type_error(message: str) -> TypeError:
    return TypeError(message)


def syntax_error(message: str) -> SyntaxError:
    return SyntaxError(message)


def function_error(message: str) -> FunctionError:
    return FunctionError(message)


def evaluation_error(message: str) -> EvaluationError:
    return EvaluationError(message)
