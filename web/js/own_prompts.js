// Which WebSocket messages belong to this page's prompts: prompts queued without a client_id (scripts, other tools)
// have their events broadcast to every page, and those must not be drawn on this graph's nodes.

/** Passes on the messages of prompts this page queued (and every message not about a prompt). */
export class OwnPrompts {
  constructor(deliver) {
    this.deliver = deliver;
    this.own = new Set();
    this.inFlight = 0; // /prompt requests not answered yet: their events may come before the prompt id does
    this.held = []; // [type, data] of unknown prompts, kept while a request is in flight
    this.current = null; // the prompt the server runs now (binary previews carry no prompt id)
  }

  /** Count as this page's the running and pending prompts of `queue` (GET /queue) queued with `clientId`. */
  adopt(queue, clientId) {
    for (const item of [...(queue.queue_running ?? []), ...(queue.queue_pending ?? [])]) {
      const [, promptId, , extraData] = item;
      if (extraData?.client_id === clientId) this.own.add(promptId);
    }
    const running = queue.queue_running?.[0]?.[1];
    if (running) this.current = running;
  }

  /** Call before POST /prompt. */
  queueing() {
    this.inFlight += 1;
  }

  /** Call with /prompt's answered prompt id (null when it was refused): held messages of it are delivered. */
  queued(promptId) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (promptId) this.own.add(promptId);
    const held = this.held;
    this.held = [];
    for (const [type, data] of held) this.receive(type, data);
  }

  /** Take one WebSocket message. */
  receive(type, data) {
    const promptId = data?.prompt_id;
    if (type === "b_preview") {
      if (this.current === null || this.own.has(this.current)) this.deliver(type, data);
      else if (this.inFlight > 0) this.held.push([type, data]);
      return;
    }
    if (promptId === undefined || type === "status") {
      this.deliver(type, data);
      return;
    }
    if (type === "execution_start") this.current = promptId;
    if (this.own.has(promptId)) this.deliver(type, data);
    else if (this.inFlight > 0) this.held.push([type, data]);
  }
}
