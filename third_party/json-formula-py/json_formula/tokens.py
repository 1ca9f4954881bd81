# Copyright 2026 Adobe. All rights reserved.
# This file is licensed to you under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License. You may obtain a copy
# of the License at http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software distributed under
# the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR REPRESENTATIONS
# OF ANY KIND, either express or implied. See the License for the specific language
# governing permissions and limitations under the License.

"""Token definitions for the JSON Formula parser."""

TOK_EOF = "EOF"
TOK_IDENTIFIER = "Identifier"
TOK_QUOTEDIDENTIFIER = "QuotedIdentifier"
TOK_RBRACKET = "Rbracket"
TOK_RPAREN = "Rparen"
TOK_COMMA = "Comma"
TOK_COLON = "Colon"
TOK_CONCATENATE = "Concatenate"
TOK_RBRACE = "Rbrace"
TOK_NUMBER = "Number"
TOK_CURRENT = "Current"
TOK_GLOBAL = "Global"
TOK_EXPREF = "Expref"
TOK_PIPE = "Pipe"
TOK_OR = "Or"
TOK_AND = "And"
TOK_ADD = "Add"
TOK_SUBTRACT = "Subtract"
TOK_UNARY_MINUS = "UnaryMinus"
TOK_MULTIPLY = "Multiply"
TOK_UNION = "Union"
TOK_DIVIDE = "Divide"
TOK_COMPARATOR = "Comparator"
TOK_FLATTEN = "Flatten"
TOK_STAR = "Star"
TOK_FILTER = "Filter"
TOK_DOT = "Dot"
TOK_NOT = "Not"
TOK_LBRACE = "Lbrace"
TOK_LBRACKET = "Lbracket"
TOK_LPAREN = "Lparen"
TOK_JSON = "Literal"
TOK_STRING = "String"
TOK_INT = "Integer"
