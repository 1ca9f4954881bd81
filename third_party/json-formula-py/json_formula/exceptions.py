# Copyright 2026 Adobe. All rights reserved.
# This file is licensed to you under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License. You may obtain a copy
# of the License at http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software distributed under
# the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR REPRESENTATIONS
# OF ANY KIND, either express or implied. See the License for the specific language
# governing permissions and limitations under the License.

"""Exception hierarchy for JSON Formula."""

from __future__ import annotations


class JsonFormulaError(Exception):
    """Base exception for JSON Formula errors."""


class SyntaxError(JsonFormulaError):
    """Expression parsing failed."""


class FunctionError(JsonFormulaError):
    """Function resolution or arity validation failed."""


class EvaluationError(JsonFormulaError):
    """Evaluation failed at runtime."""


class TypeError(JsonFormulaError):
    """Type coercion or type compatibility failed."""
