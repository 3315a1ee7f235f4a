"""zot's search schema (`schema.graphql`, beside this file), with the resolvers bound."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from graphql import GraphQLSchema, build_schema

from ocireg.api.graphql.resolvers import RESOLVERS


@cache
def search_schema() -> GraphQLSchema:
    """Built once per process; every other field is read from the dicts the resolvers
    return (graphql-core's default resolver: a key, or a callable that it calls)."""
    schema = build_schema(files(__package__).joinpath("schema.graphql").read_text("utf-8"))
    query = schema.query_type
    assert query is not None
    missing = set(query.fields) ^ set(RESOLVERS)
    assert not missing, f"schema and resolvers disagree on {sorted(missing)}"
    for name, resolve in RESOLVERS.items():
        query.fields[name].resolve = resolve
    return schema
