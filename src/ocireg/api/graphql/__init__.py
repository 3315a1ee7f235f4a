"""zot's GraphQL search API (`/v2/_zot/ext/search`), for zui, zli and scripts written for zot.

`endpoint` answers HTTP, `schema` and `resolvers` the queries, `summaries` zot's shapes, and
`source` is the one place the registry is read (the seam for an index-backed search)."""
