"""The execute function's reserved concurrency (ExecuteReservedConcurrency), as deployed: so the
scheduler cannot starve the account's other functions, unless the operator turns it off with 0."""

from __future__ import annotations

from typing import Any

import pytest

from local.template import load_template, parameter_defaults, with_language_extensions
from tests.template.transform import sam_transform


def deployed_execute_function(value: Any) -> dict[str, Any]:
    template = with_language_extensions(load_template(), {"ExecuteReservedConcurrency": value})
    parameters = {**parameter_defaults(template), "ExecuteReservedConcurrency": value}
    return sam_transform(template, parameters)["Resources"]["ExecuteTaskFunction"]["Properties"]


def test_the_execute_function_reserves_concurrency_by_default() -> None:
    default = load_template()["Parameters"]["ExecuteReservedConcurrency"]["Default"]
    assert default > 0
    assert deployed_execute_function(default)["ReservedConcurrentExecutions"] == {
        "Ref": "ExecuteReservedConcurrency"
    }


@pytest.mark.parametrize("zero", [0, "0"])
def test_zero_reserves_nothing(zero: Any) -> None:
    assert "ReservedConcurrentExecutions" not in deployed_execute_function(zero)


def test_the_other_functions_reserve_nothing() -> None:
    template = load_template()
    for name in ("ScheduleTaskFunction", "ReconcileFunction"):
        assert "ReservedConcurrentExecutions" not in template["Resources"][name]["Properties"]
