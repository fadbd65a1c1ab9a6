"""The SAM transform, run offline (aws-sam-translator is the library the hosted transform runs),
and what CloudFormation then creates from its output."""

from __future__ import annotations

import copy
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local.template import condition_values


def sam_transform(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform of `template`, code locations replaced by S3 URIs as `sam package`
    would leave them (the translator accepts nothing else)."""
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = "s3://packaged-artifacts/code.zip"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    return translator.translate(packaged, parameter_values=dict(parameters))


def as_deployed(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """What CloudFormation creates from the transformed `template` for these parameter values:
    resources and outputs whose Condition is false are left out."""
    conditions = condition_values(template, parameters)
    deployed = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        deployed[section] = {
            name: body
            for name, body in template.get(section, {}).items()
            if conditions.get(body.get("Condition"), True)
        }
    return deployed
