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
  queue: () => getJson("/queue"),
  /** fetch() of an API path (e.g. "/userdata?dir=workflows"), with the page's token. */
  fetch: (path, init = {}) => fetch(`api${path}`, { ...init, headers: headers(init.headers) }),
  viewUrl: ({ filename, subfolder = "", type = "output" }) => {
    const query = new URLSearchParams({ filename, subfolder, type });
    if (token) query.set("token", token);
    return `api/view?${query}`;
  },
};

const PREVIEW_IMAGE_EVENT = 1;
const PREVIEW_FORMATS = { 1: "image/jpeg", 2: "image/png" };

/**
 * Decode one of ComfyUI's binary frames: a 4-byte big-endian event type, then for a preview image (type 1) a 4-byte
 * format (1 JPEG, 2 PNG) and the image bytes. Answers ["b_preview", Blob], or null for other or malformed frames.
 */
export function decodeBinaryFrame(buffer) {
  if (buffer.byteLength < 8) return null;
  const view = new DataView(buffer);
  const mime = PREVIEW_FORMATS[view.getUint32(4)];
  if (view.getUint32(0) !== PREVIEW_IMAGE_EVENT || !mime) return null;
  return ["b_preview", new Blob([new Uint8Array(buffer, 8)], { type: mime })];
}

/**
 * Keep a WebSocket to /ws open (reconnecting), calling onMessage(type, data) for each text frame, and
 * onMessage("b_preview", Blob) for each binary preview image.
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
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { onState(true); opened(); };
    socket.onclose = () => { onState(false); setTimeout(open, 1000); };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") {
        const decoded = decodeBinaryFrame(event.data);
        if (decoded) onMessage(...decoded);
        return;
      }
      const message = JSON.parse(event.data);
      onMessage(message.type, message.data);
    };
  };
  open();
  return firstOpen;
}
