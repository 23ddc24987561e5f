"""The MCP surface: `dispatch mcp`, a thin client of the REST API.

Tools are derived from the op registry, grouped by workflow and safety
boundary (`Op.mcp_tool`): one tool per group, each call naming its `op`
(`Op.mcp_action`). A group never mixes intents, so the read-only,
destructive and idempotent annotations are exact for every op in it.

Every call is one `POST /api/v1/ops/{op_id}` against the daemon's web
process. The adapter never touches the ORM on the call path, so it works
against a remote dispatch as well as a local one. The single exception is
the local token bootstrap (`dispatchsite.surfaces.daemon.resolve_token`).

The low-level `mcp.server.lowlevel.Server` is used rather than `MCPServer`:
the registry already has JSON schemas and `MCPServer` derives a tool's
input schema from a Python signature, which cannot express the
`{op, oneOf: [...]}` shape.

- `projection`: the op registry as MCP tools (names, schemas, annotations).
- `results`: tool results shaped like the CLI's and REST's bodies.
- `client`: the REST client that runs one op against the daemon.
- `server`: the MCP server routing tool calls to that client.
- `serve`: the stdio and streamable HTTP transports, and `dispatch mcp`.
"""
