// The server's HTTP and WebSocket API (ComfyUI's routes), with the page's ?token= passed on when there is one.

const token = new URLSearchParams(location.search).get("token");

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function getJson(path) {
  const response = await fetch(`api${path}`, { headers: headers() });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** POST a JSON body; answers {ok, status, body} so callers can read error bodies (node_errors). */
async function postJson(path, body) {
  const response = await fetch(`api${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { error: { message: text } }; }
  return { ok: response.ok, status: response.status, body: parsed };
}

export const api = {
  objectInfo: () => getJson("/object_info"),
  templates: async () => (await getJson("/reelgraph/templates")).templates,
  template: (name) => getJson(`/reelgraph/templates/${encodeURIComponent(name)}`),
  queuePrompt: (prompt, workflow, clientId) =>
    postJson("/prompt", { prompt, client_id: clientId, extra_data: { extra_pnginfo: { workflow } } }),
  interrupt: () => postJson("/interrupt", {}),
  viewUrl: ({ filename, subfolder = "", type = "output" }) => {
    const query = new URLSearchParams({ filename, subfolder, type });
    if (token) query.set("token", token);
    return `api/view?${query}`;
  },
};

/**
 * Keep a WebSocket to /ws open (reconnecting), calling onMessage(type, data) for each text frame.
 * Answers a promise that settles when the first connection opens.
 */
export function connectSocket(clientId, onMessage, onState = () => {}) {
  let opened;
  const firstOpen = new Promise((resolve) => { opened = resolve; });
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ clientId });
  if (token) query.set("token", token);
  const url = `${scheme}://${location.host}${location.pathname.replace(/[^/]*$/, "")}ws?${query}`;
  const open = () => {
    const socket = new WebSocket(url);
    socket.onopen = () => { onState(true); opened(); };
    socket.onclose = () => { onState(false); setTimeout(open, 1000); };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return; // binary previews: next increment
      const message = JSON.parse(event.data);
      onMessage(message.type, message.data);
    };
  };
  open();
  return firstOpen;
}
