"""moto, made cheaper where local mode spends its CPU, without changing what it answers.

Measured on a burst of tasks (bench/local_burst.py, py-spy on local mode's main process): moto's
request handling, not the functions' own work, is where a burst queues. Each change here is one
moto routine replaced by one that computes the same thing with less work.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import deque
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


def walk_syntax_trees_cheaper() -> None:
    """Idempotent. moto validates an UpdateExpression by walking its syntax tree once per check
    (about ten walks per UpdateItem). For every node of every walk it builds the walker's
    node-class -> handler map twice and tests the node against each class (abstract classes, so
    each test is a slow `isinstance`), once to decide whether to handle it and once to pick the
    handler. A walker's map never changes (each is a literal of its own methods) and the answer
    depends on the node's type alone, so each walker finds the handler once per node type; the
    walk itself is moto's: children first, in order, each replaced by what its handler returns."""
    from moto.dynamodb.parsing.ast_nodes import (
        DepthFirstTraverser,
        Expression,
        Node,
        UpdateExpressionFunction,
    )

    if getattr(DepthFirstTraverser.traverse_node_recursively, _MARK, False):
        return
    no_handler = object()
    is_node = _SubclassTest(Node)
    descends = _SubclassTest((Expression, UpdateExpressionFunction))

    def handler_for(walker: Any, node_type: type) -> Any:
        handlers = walker.__dict__.get("_task_scheduler_handlers")
        if handlers is None:
            handlers = walker.__dict__["_task_scheduler_handlers"] = {}
        handler = handlers.get(node_type)
        if handler is None:
            handler = next(
                (
                    each
                    for node_class, each in walker._processing_map().items()
                    if issubclass(node_type, node_class)
                ),
                no_handler,
            )
            handlers[node_type] = handler
        return handler

    def traverse_node_recursively(walker: Any, node: Any, child_id: int = -1) -> Any:
        if is_node(type(node)):
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    walker.pre_processing_of_child(node, i)
                    walker.traverse_node_recursively(child_node, i)
            handler = handler_for(walker, type(node))
            if handler is not no_handler:
                node = handler(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    def find_clauses(node: Any, clause_types: Any) -> list[Any]:
        # moto's, with each child's type tested once per type: the action-count check runs
        # it for every nested UpdateExpression node, so it is quadratic in the actions.
        clauses = []
        for child in node.children or []:
            child_type = type(child)
            if child_type in clause_types:
                clauses.append(child)
            elif descends(child_type):
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    setattr(traverse_node_recursively, _MARK, True)
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively  # type: ignore[method-assign]
    Node.find_clauses = find_clauses  # type: ignore[method-assign]


def look_up_reserved_words_in_a_set() -> None:
    """Idempotent. moto tests every attribute name of an expression against DynamoDB's ~570
    reserved words kept as a list (a scan, ~7 µs for a name that is not one, about a dozen
    names per claim and record). The same words in a list that answers `in` from a set."""
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    if isinstance(ReservedKeywords.KEYWORDS, _Words):
        return
    ReservedKeywords.KEYWORDS = _Words(ReservedKeywords.get_reserved_keywords())


class _Words(list[str]):
    """A list of words (as moto keeps them) whose membership test is a set's."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(words)
        self._set = frozenset(words)

    def __contains__(self, word: object) -> bool:
        return word in self._set


class _SubclassTest:
    """`isinstance(x, classes)` as a test of `type(x)`, remembered per type: moto's syntax tree
    classes are abstract, and an abstract class's isinstance is several times a plain one's."""

    def __init__(self, classes: type | tuple[type, ...]) -> None:
        self._classes = classes
        self._known: dict[type, bool] = {}

    def __call__(self, node_type: type) -> bool:
        known = self._known.get(node_type)
        if known is None:
            known = self._known[node_type] = issubclass(node_type, self._classes)
        return known


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
    deepcopy's memo, values as deepcopy copies them) gives the same tree several times faster,
    and faster still calling this copy for the nodes instead of going through deepcopy's
    dispatch for each child and parent link."""
    import copy

    from moto.dynamodb.parsing.ast_nodes import Node

    if getattr(Node.__dict__.get("__deepcopy__"), _MARK, False):
        return
    atomic = frozenset({str, int, float, bool, type(None)})
    is_node = _SubclassTest(Node)

    def deepcopy_node(node: Any, memo: dict[int, Any]) -> Any:
        twin = node.__class__.__new__(node.__class__)
        memo[id(node)] = twin
        attributes = {}
        for name, value in node.__dict__.items():
            kind = type(value)
            if kind in atomic:
                attributes[name] = value
            elif kind is list:
                attributes[name] = [copy_of(each, memo) for each in value]
            else:
                attributes[name] = copy_of(value, memo)
        twin.__dict__.update(attributes)
        return twin

    def copy_of(value: Any, memo: dict[int, Any]) -> Any:
        # What copy.deepcopy(value, memo) gives, without its dispatch for the tree's own parts:
        # a node is copied here (no node class has a copy of its own), a node already copied
        # (the parent link) is its twin.
        kind = type(value)
        if kind in atomic:
            return value
        if is_node(kind):
            twin = memo.get(id(value))
            return twin if twin is not None else deepcopy_node(value, memo)
        return copy.deepcopy(value, memo)

    setattr(deepcopy_node, _MARK, True)
    Node.__deepcopy__ = deepcopy_node  # type: ignore[attr-defined]


def check_each_expression_once() -> None:
    """Idempotent. moto's first three UpdateExpression checks (at most one clause of each kind,
    no two actions on overlapping paths, no key attribute updated) read only the parsed text,
    the attribute names and the table's key: not the values, not the item. They walk a fresh
    copy of the one parse of the text, before any check changes it; the action-count and
    overlap checks do it for every nested clause, each time listing the whole subtree's actions
    (quadratic in the actions). Once they have passed for a text, its names and the table's
    key, they pass again: those are not run again. So is the function check (if_not_exists,
    list_append) on a text that calls none. A text that failed a check is checked every time,
    so it fails as moto fails it."""
    from moto.dynamodb.parsing.ast_nodes import Node, UpdateExpressionFunction
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateExpressionFunctionEvaluator,
        UpdateExpressionValidator,
        UpdateHashRangeKeyValidator,
    )

    if getattr(UpdateExpressionValidator.validate, _MARK, False):
        return
    static = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    original_init = UpdateExpressionValidator.__init__
    # id(parse) -> (the parse, kept alive so its id is not reused; whether it calls a function;
    # the (names, table key) it has passed the static checks with).
    passed: dict[int, tuple[Any, bool, set[Any]]] = {}
    lock = threading.Lock()

    def calls_a_function(tree: Any) -> bool:
        pending = [tree]
        while pending:
            node = pending.pop()
            if isinstance(node, UpdateExpressionFunction):
                return True
            if isinstance(node, Node) and node.children:
                pending.extend(node.children)
        return False

    def init(validator: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        original_init(validator, expression, *args, **kwargs)
        validator.__dict__["_task_scheduler_parse"] = expression

    def validate(validator: Any) -> Any:
        tree = validator.__dict__.get("_task_scheduler_parse")
        if tree is None:  # made some other way: moto's own
            return original_validate(validator)
        try:
            names = frozenset((validator.expression_attribute_names or {}).items())
        except (TypeError, AttributeError):  # names that are not a map of text: moto's say
            return original_validate(validator)
        checked = (names, tuple(validator.table.table_key_attrs))
        with lock:
            known = passed.get(id(tree))
            if known is None or known[0] is not tree:
                if len(passed) >= 1024:  # as many as moto's parse cache holds, and then some
                    passed.clear()
                known = passed[id(tree)] = (tree, calls_a_function(tree), set())
            skip_static = checked in known[2]
        node = validator.node_to_validate
        static_left = sum(1 for processor in validator.processors if type(processor) in static)
        for processor in validator.processors:
            kind = type(processor)
            if skip_static and kind in static:
                continue
            if kind is UpdateExpressionFunctionEvaluator and not known[1]:
                continue  # nothing for it to evaluate (no check before it adds a function)
            node = processor.traverse(node)
            if kind in static and not skip_static:
                static_left -= 1
                if not static_left:  # every static check has passed
                    with lock:
                        known[2].add(checked)
        return node

    original_validate = UpdateExpressionValidator.validate
    setattr(validate, _MARK, True)
    UpdateExpressionValidator.__init__ = init  # type: ignore[method-assign]
    UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]


def lex_each_condition_once() -> None:
    """Idempotent. moto splits a ConditionExpression into tokens on every call, trying six
    regular expressions (each looked up in re's cache) for every token. The tokens depend on the
    text alone, and the conditions a program sends are few and repeat: each text is split once,
    and each call gets the same tokens as new nodes (moto's later steps may change a node's
    children). A text moto cannot split fails as moto fails it, every time."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    if getattr(lex, _MARK, False):
        return
    node = ConditionExpressionParser.Node
    literal = ConditionExpressionParser.Kind.LITERAL

    @functools.lru_cache(maxsize=512)
    def tokens(text: str) -> tuple[tuple[str, str], ...]:
        split = lex(ConditionExpressionParser(text, {}, {}))  # moto's lexer reads the text only
        return tuple((each.nonterminal, each.text) for each in split)

    def lex_once(parser: Any) -> Any:
        return deque(
            node(nonterminal=kind, kind=literal, text=text, value=text, children=[])
            for kind, text in tokens(parser.condition_expression)
        )

    setattr(lex_once, _MARK, True)
    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


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


def parse_plain_item_requests_directly() -> None:
    """Idempotent. moto parses every request by walking the operation's input model member by
    member over the JSON (a handler lookup and a typed copy per value). For DynamoDB's item
    operations the walk gives back the JSON as it is, except binary attributes (B, BS), which it
    decodes from base64, and null members, which it leaves out: such a request is parsed as JSON
    alone unless it has a "B" or "BS" key or a null anywhere (a text that merely contains those
    characters takes moto's path too)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.parse_parameters
    if getattr(original, _MARK, False):
        return

    def parse_parameters(handler: Any, request: Any) -> None:
        body = request.data
        if (
            handler._get_action() in _ITEM_OPERATIONS
            and body
            and b'"B"' not in body
            and b'"BS"' not in body
            and b"null" not in body  # moto leaves a null member out
        ):
            try:
                parsed = json.loads(body)
            except ValueError:  # moto's answer to a body that is not JSON
                parsed = None
            if type(parsed) is dict:
                handler.params = parsed
                return
        original(handler, request)

    setattr(parse_parameters, _MARK, True)
    DynamoHandler.parse_parameters = parse_parameters  # type: ignore[method-assign]


def _is_plain_json(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and _is_plain_json(each) for key, each in value.items())
    if kind is list:
        return all(_is_plain_json(each) for each in value)
    return kind in (str, bool, int, float)


def draw_random_strings_at_once() -> None:
    """Idempotent. moto draws its request ids (52 characters, one per answer) and SQS receipt
    handles (185 characters, one per message received) a character per call to `choice`; one
    `choices` call draws the same kind of string from the same generator (seeding still works)."""
    import string

    import moto.sqs.models as sqs_models
    from moto.moto_api._internal.moto_random import MotoRandom

    if getattr(MotoRandom.get_random_string, _MARK, False):
        return

    def get_random_string(
        generator: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(generator.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    def generate_receipt_handle() -> str:
        from moto.moto_api._internal import mock_random

        return "".join(mock_random.choices(string.ascii_lowercase, k=185))

    setattr(get_random_string, _MARK, True)
    MotoRandom.get_random_string = get_random_string  # type: ignore[method-assign]
    sqs_models.generate_receipt_handle = generate_receipt_handle


def count_queue_messages_with_one_clock_reading() -> None:
    """Idempotent. moto's SendMessage reads the queue's attributes (for one FIFO setting), and
    these count the delayed and the in-flight messages by asking each message whether it is
    delayed or visible, each question a clock reading: a send cost a scan of the queue at two
    clock readings per message, so scheduling N tasks due within minutes cost N^2 readings (two
    thirds of local mode's CPU at 2,000). The same counts, with the clock read once per count."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    if getattr(Queue.approximate_number_of_messages_delayed.fget, _MARK, False):
        return

    def delayed(queue: Any) -> int:
        now = unix_time_millis()
        return sum(1 for message in queue._messages if now < message.delayed_until)

    def not_visible(queue: Any) -> int:
        now = unix_time_millis()
        return sum(1 for message in queue._messages if not now > message.visible_at)

    setattr(delayed, _MARK, True)
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[method-assign,assignment]


def delete_sqs_messages_in_one_pass() -> None:
    """Idempotent. moto's DeleteMessage scans the queue twice (once to find the handle, once to
    rebuild the queue without the message), asking each message for the list of every receipt
    handle it has had, built anew for each question: ~75 µs a delete in a queue of 500. The same
    removal in one pass, comparing the handles in place; a handle no message has had still
    changes nothing and is refused as moto refuses it. It holds the queue's lock, as receives
    do here (local.moto_sqs), which moto's does not."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    if getattr(Queue.delete_message, _MARK, False):
        return

    def delete_message(queue: Any, receipt_handle: str) -> None:
        # Under the queue's lock (moto's takes none): the queue is rebuilt without the message,
        # and two deletes side by side could each put back what the other removed.
        with queue._messages_lock:
            if receipt_handle in queue.deleted_messages:
                return  # already deleted: moto (and SQS) accept it again
            kept = []
            deleted = []
            for message in queue._messages:
                if (
                    message.receipt_handle == receipt_handle
                    or receipt_handle in message._old_receipt_handles
                ):
                    deleted.append(message)
                else:
                    kept.append(message)
            if not deleted:
                raise ReceiptHandleIsInvalid()
            for message in deleted:
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
            queue._messages = kept

    setattr(delete_message, _MARK, True)
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def make_moto_cheaper() -> None:
    """Every change in this module (each idempotent)."""
    cache_handler_method_names()
    walk_syntax_trees_cheaper()
    look_up_reserved_words_in_a_set()
    cache_update_expression_parses()
    copy_syntax_trees_directly()
    check_each_expression_once()
    lex_each_condition_once()
    serialize_plain_item_results_directly()
    parse_plain_item_requests_directly()
    draw_random_strings_at_once()
    count_queue_messages_with_one_clock_reading()
    delete_sqs_messages_in_one_pass()
