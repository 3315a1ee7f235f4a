"""How much one GraphQL query may ask for, checked on the parsed document before it is
validated or run.

Every alias of a root field runs its resolver again: `{a0: RepoListWithNewestImage {...}
a1: ...}` lists the registry once per alias, and a 1 MiB body held about 24,000 of them
(seconds of parsing and validating, minutes of resolving, ~80 MiB of syntax tree per distinct
text in the parse cache). The queries zui and zli send have one root field and at most about
50 fields in all (tests/graphql/queries.py), so the limits are far above any client's and far
below what hurts.
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

MAX_FIELDS = 500  # field selections in the whole document
MAX_ROOT_FIELDS = 10  # fields at the root of one operation, fragments included


def check_limits(document: DocumentNode) -> None:
    """Raise a GraphQLError (answered 422, as an invalid query) past either limit."""
    fields = sum(_count_fields(definition) for definition in document.definitions)
    if fields > MAX_FIELDS:
        raise GraphQLError(f"query selects {fields} fields, more than the {MAX_FIELDS} allowed")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            roots = _root_fields(definition.selection_set, fragments, set())
            if roots > MAX_ROOT_FIELDS:
                raise GraphQLError(
                    f"query asks for {roots} root fields, more than the {MAX_ROOT_FIELDS} allowed"
                )


def _count_fields(node: object) -> int:
    # Iterative: a document nested thousands deep must not exhaust the stack here.
    count = 0
    stack = [node]
    while stack:
        current = stack.pop()
        selection_set = getattr(current, "selection_set", None)
        if isinstance(current, FieldNode):
            count += 1
        if isinstance(selection_set, SelectionSetNode):
            stack.extend(selection_set.selections)
    return count


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> int:
    """The fields one level down, through fragment spreads and inline fragments (each named
    fragment once: a cycle is the validator's to report)."""
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            count += 1
        elif isinstance(selection, InlineFragmentNode):
            count += _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                count += _root_fields(fragment.selection_set, fragments, seen)
    return count
