"""moto, made cheaper where local mode spends its CPU, without changing what it answers.

Measured on a burst of tasks (bench/local_burst.py, py-spy on local mode's main process): moto's
request handling, not the functions' own work, is where a burst queues. Each change here is one
moto routine replaced by one that computes the same thing with less work.
"""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_task_scheduler_cached"


def cache_handler_method_names() -> None:
    """Idempotent. moto looks up a response class's methods (inspect.getmembers over the whole
    class) on every request to find the action's handler; a class's methods do not change, so
    the list is computed once per class."""
    import moto.core.responses as responses

    if getattr(responses.method_names_from_class, _MARK, False):
        return
    cached = functools.cache(responses.method_names_from_class)
    setattr(cached, _MARK, True)
    responses.method_names_from_class = cached


def cache_processing_maps() -> None:
    """Idempotent. moto validates an UpdateExpression by walking its syntax tree once per check
    (about ten walks per UpdateItem), and for every node of every walk builds the walker's
    node-class -> handler map twice (to test the node, then to pick its handler). A walker's
    map never changes (each is a literal of the walker's own methods): it is built once."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    if getattr(DepthFirstTraverser.process, _MARK, False):
        return

    def processing_map(walker: Any) -> dict[type, Any]:
        cached = walker.__dict__.get("_task_scheduler_map")
        if cached is None:
            cached = walker.__dict__["_task_scheduler_map"] = walker._processing_map()
        return cached

    def nodes_to_be_processed(walker: Any) -> tuple[type, ...]:
        return tuple(processing_map(walker))

    def process(walker: Any, node: Any) -> Any:
        for node_class, handler in processing_map(walker).items():
            if isinstance(node, node_class):
                return handler(node)
        return None

    setattr(process, _MARK, True)
    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed  # type: ignore[method-assign]
    DepthFirstTraverser.process = process  # type: ignore[method-assign]


def cache_update_expression_parses() -> None:
    """Idempotent. moto parses an UpdateItem's UpdateExpression twice per call (its handler and
    its backend); the expressions a program sends are few and repeat, and a parse depends on the
    text alone, so each text is parsed once. Sharing the tree is safe because moto only reads the
    parsed tree: its validator works on a deep copy (`Validator.__init__`)."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = UpdateExpressionParser.__dict__["make"].__func__
    if getattr(make, _MARK, False):
        return
    parse = functools.lru_cache(maxsize=512)(lambda text: make(UpdateExpressionParser, text))

    def cached_make(cls: Any, expression: str) -> Any:
        if cls is not UpdateExpressionParser:  # a subclass parses for itself
            return make(cls, expression)
        return parse(expression)

    setattr(cached_make, _MARK, True)
    UpdateExpressionParser.make = classmethod(cached_make)  # type: ignore[assignment,method-assign]


def copy_syntax_trees_directly() -> None:
    """Idempotent. moto's validator deep-copies the syntax tree of every UpdateExpression it
    checks, through copy.deepcopy's generic protocol (`__reduce_ex__`, then rebuilding each
    object). A node is its attributes: copying them straight (children, the parent link through
    deepcopy's memo, values as deepcopy copies them) gives the same tree several times faster."""
    import copy

    from moto.dynamodb.parsing.ast_nodes import Node

    if getattr(Node.__dict__.get("__deepcopy__"), _MARK, False):
        return
    atomic = (str, int, float, bool, type(None))

    def deepcopy_node(node: Any, memo: dict[int, Any]) -> Any:
        twin = node.__class__.__new__(node.__class__)
        memo[id(node)] = twin
        attributes = {}
        for name, value in node.__dict__.items():
            if isinstance(value, atomic):
                attributes[name] = value
            elif type(value) is list:
                attributes[name] = [
                    each if isinstance(each, atomic) else copy.deepcopy(each, memo)
                    for each in value
                ]
            else:
                attributes[name] = copy.deepcopy(value, memo)
        twin.__dict__.update(attributes)
        return twin

    setattr(deepcopy_node, _MARK, True)
    Node.__deepcopy__ = deepcopy_node  # type: ignore[attr-defined]


def make_moto_cheaper() -> None:
    """Every change above (each idempotent)."""
    cache_handler_method_names()
    cache_processing_maps()
    cache_update_expression_parses()
    copy_syntax_trees_directly()
    serialize_plain_item_results_directly()


# DynamoDB's item operations, whose moto results are already in the wire's JSON form.
_ITEM_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"})


def serialize_plain_item_results_directly() -> None:
    """Idempotent. moto serialises every answer by walking the operation's output model member
    by member (for each: alias lookups, a context object, a typed copy). The answers of
    DynamoDB's item operations are plain JSON already, in the wire's names (an item is its
    attribute-value map), and the walk gives them back unchanged; those are dumped as they are.
    Anything the walk could change goes the long way: a key the model does not have, a null,
    bytes (binary attributes, which the walk base64-encodes), any other type."""
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_result
    if getattr(original, _MARK, False):
        return

    def serialize_result(serializer: Any, response: Any, result: Any) -> Any:
        operation = serializer.operation_model
        shape = operation.output_shape
        if (
            operation.name in _ITEM_OPERATIONS
            and operation.service_model.service_name == "dynamodb"
            and shape is not None
            and type(result) is dict
            and result.keys() <= shape.members.keys()
            and _is_plain_json(result)
        ):
            return serializer._serialized_result_to_response(response, result, shape, result)
        return original(serializer, response, result)

    setattr(serialize_result, _MARK, True)
    BaseJSONSerializer._serialize_result = serialize_result  # type: ignore[method-assign]


def _is_plain_json(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and _is_plain_json(each) for key, each in value.items())
    if kind is list:
        return all(_is_plain_json(each) for each in value)
    return kind in (str, bool, int, float)
