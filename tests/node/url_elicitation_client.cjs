// The official TypeScript MCP SDK as a gateway client completing a URL elicitation, for
// tests/integration/elicitation.rs. Run with NODE_PATH=.tools/node/node_modules.
//
// Usage: url_elicitation_client.cjs MCP_URL BEARER TOOL TOKEN
// Initializes declaring the elicitation capability (url mode), calls TOOL; on the SDK's
// UrlElicitationRequiredError it opens the elicitation's page (through the gateway at MCP_URL's
// host, as a browser behind the gateway's public host would), posts TOKEN with the page's CSRF
// cookie and field, and calls TOOL again. Prints one JSON object with what it saw.
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { UrlElicitationRequiredError } = require('@modelcontextprotocol/sdk/types.js');

async function main() {
  const [mcpUrl, bearer, tool, token] = process.argv.slice(2);
  const headers = { authorization: `Bearer ${bearer}` };
  const base = new URL(mcpUrl);
  const client = new Client(
    { name: 'url-elicitation-test', version: '1' },
    { capabilities: { elicitation: { form: {}, url: {} } } },
  );
  await client.connect(new StreamableHTTPClientTransport(base, { requestInit: { headers } }));
  const out = {};
  try {
    await client.callTool({ name: tool, arguments: {} });
    out.first = 'answered';
  } catch (e) {
    out.first = e instanceof UrlElicitationRequiredError ? 'UrlElicitationRequiredError' : String(e);
    const el = e.elicitations[0];
    out.mode = el.mode;
    const page = new URL(el.url);
    page.protocol = base.protocol;
    page.host = base.host;
    const got = await fetch(page, { headers });
    out.page = got.status;
    const cookie = (got.headers.get('set-cookie') || '').split(';')[0];
    const csrf = /name="csrf_token" value="([^"]+)"/.exec(await got.text())[1];
    const posted = await fetch(new URL('/tokens', base), {
      method: 'POST',
      headers: { ...headers, cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ elicitation_id: el.elicitationId, token, csrf_token: csrf }),
    });
    out.posted = posted.status;
  }
  const r = await client.callTool({ name: tool, arguments: {} });
  out.isError = r.isError === true;
  out.text = r.content && r.content[0] ? r.content[0].text : null;
  await client.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
