"""The offline stand-in for AWS::LanguageExtensions: conditions evaluated from parameters,
Fn::If replaced by its branch, AWS::NoValue removed - what local mode and the template tests
build on."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.template import (
    condition_values,
    load_template,
    resolve_conditionals,
    with_language_extensions,
)

TEMPLATE = """\
Transform:
  - AWS::LanguageExtensions
  - AWS::Serverless-2016-10-31
Parameters:
  Mode:
    Type: String
    Default: A
  Topic:
    Type: String
    Default: ""
Conditions:
  IsA: !Equals [!Ref Mode, A]
  HasTopic: !Not [!Equals [!Ref Topic, ""]]
  AWithTopic: !And [!Condition IsA, !Condition HasTopic]
  AOrTopic: !Or [!Condition IsA, !Condition HasTopic]
Resources:
  Thing:
    Type: AWS::Serverless::Api
    Properties:
      Auth: !If [IsA, {ApiKeyRequired: true}, {DefaultAuthorizer: AWS_IAM}]
      Actions: !If [HasTopic, [!Ref Topic], !Ref AWS::NoValue]
      Nested:
        Code: !If [IsA, !If [HasTopic, both, a-only], other]
      List:
        - keep
        - !If [HasTopic, topic, !Ref AWS::NoValue]
Outputs:
  Key:
    Condition: IsA
    Value: !Ref Thing
"""


@pytest.fixture
def template(tmp_path: Path) -> dict:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return load_template(path)


def test_short_form_condition_is_a_condition_reference(template: dict) -> None:
    assert template["Conditions"]["AWithTopic"] == {
        "Fn::And": [{"Condition": "IsA"}, {"Condition": "HasTopic"}]
    }


@pytest.mark.parametrize(
    ("mode", "topic", "expected"),
    [
        ("A", "", {"IsA": True, "HasTopic": False, "AWithTopic": False, "AOrTopic": True}),
        ("A", "arn:t", {"IsA": True, "HasTopic": True, "AWithTopic": True, "AOrTopic": True}),
        ("B", "", {"IsA": False, "HasTopic": False, "AWithTopic": False, "AOrTopic": False}),
        ("B", "arn:t", {"IsA": False, "HasTopic": True, "AWithTopic": False, "AOrTopic": True}),
    ],
)
def test_conditions_follow_the_parameters(
    template: dict, mode: str, topic: str, expected: dict
) -> None:
    assert condition_values(template, {"Mode": mode, "Topic": topic}) == expected


def test_an_unknown_condition_function_is_refused() -> None:
    with pytest.raises(ValueError, match="Fn::Contains"):
        condition_values({"Conditions": {"X": {"Fn::Contains": [["a"], "a"]}}}, {})


def test_an_operand_that_is_not_a_parameter_or_a_literal_is_refused() -> None:
    conditions = {"X": {"Fn::Equals": [{"Fn::Sub": "${AWS::Region}"}, "us-east-1"]}}
    with pytest.raises(ValueError, match="Fn::Sub"):
        condition_values({"Conditions": conditions}, {})


def test_defaults_pick_the_first_branches_and_drop_no_value(template: dict) -> None:
    resolved = with_language_extensions(template)
    props = resolved["Resources"]["Thing"]["Properties"]
    assert props == {
        "Auth": {"ApiKeyRequired": True},
        "Nested": {"Code": "a-only"},
        "List": ["keep"],
    }


def test_overrides_pick_the_other_branches(template: dict) -> None:
    resolved = with_language_extensions(template, {"Mode": "B", "Topic": "arn:t"})
    props = resolved["Resources"]["Thing"]["Properties"]
    assert props["Auth"] == {"DefaultAuthorizer": "AWS_IAM"}
    assert props["Actions"] == [{"Ref": "Topic"}]
    assert props["Nested"] == {"Code": "other"}
    assert props["List"] == ["keep", "topic"]


def test_only_the_sam_transform_is_left_and_conditions_stay_for_cloudformation(
    template: dict,
) -> None:
    resolved = with_language_extensions(template, {"Mode": "B"})
    assert resolved["Transform"] == "AWS::Serverless-2016-10-31"
    assert resolved["Conditions"] == template["Conditions"]
    assert resolved["Outputs"]["Key"]["Condition"] == "IsA"


def test_the_input_template_is_left_untouched(template: dict) -> None:
    before = repr(template)
    with_language_extensions(template, {"Mode": "B", "Topic": "arn:t"})
    assert repr(template) == before


def test_resolving_a_value_without_conditionals_returns_it_unchanged() -> None:
    value = {"Ref": "X", "List": [1, {"Fn::Sub": "a-${X}"}]}
    assert resolve_conditionals(value, {}) == value
