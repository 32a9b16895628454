-- wrk script: POST one tools/call per request.
--   MCP_GENERATION=2025 (default): a session-era client, with the session id from MCP_SESSION.
--   MCP_GENERATION=2026: a stateless 2026-07-28 client: no session, Mcp-Method/Mcp-Name headers
--   and the protocol version in the request's _meta.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
local name = os.getenv("MCP_TOOL") or "echo"
local pad = string.rep("x", tonumber(os.getenv("MCP_PAD") or "900"))
local meta = ""
if os.getenv("MCP_GENERATION") == "2026" then
  wrk.headers["mcp-protocol-version"] = "2026-07-28"
  wrk.headers["mcp-method"] = "tools/call"
  wrk.headers["mcp-name"] = name
  meta = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",' ..
    '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"},' ..
    '"io.modelcontextprotocol/clientCapabilities":{}}'
else
  wrk.headers["mcp-protocol-version"] = "2025-11-25"
  local session = os.getenv("MCP_SESSION")
  if session and session ~= "" then
    wrk.headers["mcp-session-id"] = session
  end
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' .. name ..
  '","arguments":{"message":"' .. pad .. '"}' .. meta .. '}}'

errors = 0
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then
    errors = errors + 1
    if errors <= 3 then io.stderr:write("bad response " .. status .. ": " .. string.sub(body, 1, 200) .. "\n") end
  end
end

-- Sum the threads' counts of bad answers (not 200, or no result) for the report.
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("errors") or 0)
  end
  io.write("bad answers: " .. total .. "\n")
end
