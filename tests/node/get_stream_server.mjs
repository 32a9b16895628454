// A small MCP server built on the TypeScript SDK 1.x (@modelcontextprotocol/sdk in .tools/node)
// that asks the client for sampling and elicitation with `server.request()` made outside the
// tool call's context: the SDK sends those requests on the session's standalone GET stream, not
// on the call's POST stream. tests/integration/conformance_next.rs runs the conformance suite
// against it directly and through the gateway.
//
//   node get_stream_server.mjs PORT [--in-call]   (listens on 127.0.0.1 only; MCP endpoint /mcp)
//
// With --in-call the tools ask within the call's context instead (`extra.sendRequest`: on the
// call's POST SSE stream, as most session-era servers do), and `test_two_questions` asks for an
// elicitation, then a sampling, then lists the roots: tests/integration/asks.rs calls them as a
// 2026-07-28 client through the gateway, which asks it with input-required results.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

// The SDK lives in .tools/node, not next to this file.
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const require = createRequire(path.join(root, ".tools/node/package.json"));
const load = (m) => import(pathToFileURL(require.resolve(m)).href);
const { McpServer } = await load("@modelcontextprotocol/sdk/server/mcp.js");
const { StreamableHTTPServerTransport } = await load("@modelcontextprotocol/sdk/server/streamableHttp.js");
const { isInitializeRequest, CreateMessageResultSchema, ElicitResultSchema } = await load(
  "@modelcontextprotocol/sdk/types.js",
);
const { z } = await load("zod");

const port = Number(process.argv[2] || 3000);
const inCall = process.argv.includes("--in-call");
const { ListRootsResultSchema } = await load("@modelcontextprotocol/sdk/types.js");
const transports = new Map();

function newServer() {
  const server = new McpServer({ name: "get-stream-server", version: "1.0.0" });
  // Where a tool's question goes: the GET stream (a request made outside the call's context),
  // or with --in-call the call's own stream.
  const ask = (extra, request, schema) =>
    inCall ? extra.sendRequest(request, schema) : server.server.request(request, schema);
  server.registerTool(
    "test_simple_text",
    { description: "Returns a simple text", inputSchema: {} },
    async () => ({ content: [{ type: "text", text: "This is a simple text response for testing." }] }),
  );
  server.registerTool(
    "test_error_handling",
    { description: "Always fails", inputSchema: {} },
    async () => ({ isError: true, content: [{ type: "text", text: "This tool intentionally returns an error for testing" }] }),
  );
  server.registerTool(
    "test_sampling",
    { description: "Asks the client for sampling on the GET stream", inputSchema: { prompt: z.string() } },
    async ({ prompt }, extra) => {
      // No relatedRequestId: the SDK puts the request on the standalone GET stream (unless
      // --in-call: then on the call's own stream).
      const r = await ask(
        extra,
        {
          method: "sampling/createMessage",
          params: { messages: [{ role: "user", content: { type: "text", text: prompt } }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      const text = r.content && r.content.type === "text" ? r.content.text : JSON.stringify(r.content);
      return { content: [{ type: "text", text: `LLM response: ${text}` }] };
    },
  );
  server.registerTool(
    "test_elicitation",
    { description: "Asks the client for input on the GET stream", inputSchema: { message: z.string() } },
    async ({ message }, extra) => {
      const r = await ask(
        extra,
        {
          method: "elicitation/create",
          params: {
            message,
            requestedSchema: {
              type: "object",
              properties: {
                username: { type: "string", description: "User's response" },
                email: { type: "string", description: "User's email address" },
              },
              required: ["username", "email"],
            },
          },
        },
        ElicitResultSchema,
      );
      return { content: [{ type: "text", text: `User response: ${JSON.stringify(r)}` }] };
    },
  );
  if (inCall) {
    server.registerTool(
      "test_two_questions",
      { description: "Asks for a name, then an LLM's greeting, then the roots, in the call", inputSchema: {} },
      async (_args, extra) => {
        const who = await extra.sendRequest(
          {
            method: "elicitation/create",
            params: {
              message: "Your name?",
              requestedSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
            },
          },
          ElicitResultSchema,
        );
        if (who.action !== "accept") {
          return { content: [{ type: "text", text: `no name: ${who.action}` }] };
        }
        const greeting = await extra.sendRequest(
          {
            method: "sampling/createMessage",
            params: {
              messages: [{ role: "user", content: { type: "text", text: `Greet ${who.content.name}` } }],
              maxTokens: 20,
            },
          },
          CreateMessageResultSchema,
        );
        const roots = await extra.sendRequest({ method: "roots/list" }, ListRootsResultSchema);
        const text = greeting.content && greeting.content.type === "text" ? greeting.content.text : "?";
        return {
          content: [{ type: "text", text: `${text} (${roots.roots.map((r) => r.uri).join(",")})` }],
        };
      },
    );
  }
  return server;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

createServer(async (req, res) => {
  try {
    if (!req.url.startsWith("/mcp")) {
      res.writeHead(404).end();
      return;
    }
    const sid = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? await readBody(req) : undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (req.method !== "POST" || sid || !isInitializeRequest(body)) {
        res.writeHead(sid ? 404 : 400, { "content-type": "application/json" }).end(
          JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "no such session" } }),
        );
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => transports.set(id, transport),
      });
      transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
      await newServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
}).listen(port, "127.0.0.1", () => console.log(`get-stream server on http://127.0.0.1:${port}/mcp`));
