// The server's history as a newest-first list fetched in pages: counts it, loads the pages in view, summarises entries.

const IMAGE_FILE = /\.(png|jpe?g|webp|gif|bmp)$/i;
const END_EVENTS = ["execution_success", "execution_error", "execution_interrupted"];

/** What a history row shows of one entry (the full entry is fetched again when the run is opened). */
export function summarize(promptId, entry) {
  const messages = entry.status?.messages ?? [];
  const kinds = messages.map(([kind]) => kind);
  let status = entry.status?.status_str ?? (entry.status?.completed ? "success" : "error");
  if (kinds.includes("execution_interrupted")) status = "interrupted";
  const times = messages.map(([, data]) => data?.timestamp).filter(Number.isFinite);
  const ended = messages.some(([kind]) => END_EVENTS.includes(kind));
  const failure = messages.find(([kind]) => kind === "execution_error")?.[1];
  const files = Object.values(entry.outputs ?? {}).flatMap((output) => output?.images ?? []);
  return {
    promptId,
    number: entry.prompt?.[0],
    status,
    duration: ended && times.length > 1 ? Math.max(...times) - Math.min(...times) : null,
    error: failure ? `${failure.exception_type ?? "error"}: ${failure.exception_message ?? ""}` : null,
    image: files.find((file) => IMAGE_FILE.test(file.filename)) ?? null,
    video: files.length > 0 && !files.some((file) => IMAGE_FILE.test(file.filename)),
  };
}

/**
 * The history in pages of `pageSize`, addressed by row (0 = newest). ComfyUI's `/history?max_items=&offset=` counts
 * offsets from the oldest entry, so pages aligned on those offsets stay valid as new runs finish; the total is found
 * by probing single offsets (the API has no count).
 */
export class HistorySource {
  constructor(api, pageSize = 50) {
    this.api = api;
    this.pageSize = pageSize;
    this.count = 0;
    this.entries = new Map(); // offset from the oldest -> summary
    this.loading = new Map(); // page index -> promise
    this.generation = 0;
  }

  /** The summary shown at `row` (0 = newest), or null while its page is not loaded. */
  at(row) {
    return this.entries.get(this.count - 1 - row) ?? null;
  }

  /** Forget every loaded page (after a delete: the offsets of older entries moved). */
  invalidate() {
    this.generation += 1;
    this.entries.clear();
    this.loading.clear();
  }

  /**
   * Re-count the history; answers how many rows were added on top. Loaded entries keep their offsets while runs are
   * only added; when entries were deleted elsewhere, everything is loaded again.
   */
  async recount() {
    const before = this.count;
    let generation = this.generation;
    let count = await this.findCount(before);
    if (generation !== this.generation) return 0; // a delete here meanwhile: its own refresh follows
    if (count !== null && count >= before) {
      this.count = count;
      return count - before;
    }
    this.invalidate();
    generation = this.generation;
    count ??= await this.findCount(0);
    if (generation === this.generation) this.count = count;
    return 0;
  }

  /** Load the pages holding rows [start, end); resolves once they are in. */
  async ensure(start, end) {
    const first = Math.max(this.count - end, 0);
    const last = Math.min(this.count - 1 - start, this.count - 1);
    const waits = [];
    for (let page = Math.floor(first / this.pageSize); page * this.pageSize <= last; page += 1) {
      if (this.pageLoaded(page)) continue;
      if (!this.loading.has(page)) this.loading.set(page, this.loadPage(page));
      waits.push(this.loading.get(page));
    }
    await Promise.all(waits);
  }

  pageLoaded(page) {
    const end = Math.min((page + 1) * this.pageSize, this.count);
    for (let offset = page * this.pageSize; offset < end; offset += 1) {
      if (!this.entries.has(offset)) return false;
    }
    return true;
  }

  async loadPage(page) {
    const generation = this.generation;
    const offset = page * this.pageSize;
    try {
      const entries = Object.entries(await this.api.history(this.pageSize, offset));
      if (generation !== this.generation) return;
      entries.forEach(([promptId, entry], index) => this.entries.set(offset + index, summarize(promptId, entry)));
    } finally {
      if (generation === this.generation) this.loading.delete(page);
    }
  }

  /** The prompt id at `offset`, or undefined past the end. */
  async idAt(offset) {
    return Object.keys(await this.api.history(1, offset))[0];
  }

  async exists(offset) {
    return (await this.idAt(offset)) !== undefined;
  }

  /**
   * The number of entries, or null when the entry at `hint - 1` is not the one loaded there (deleted and refilled
   * elsewhere). From nothing, the newest page answers it when the history is shorter than a page (and those entries
   * are kept); otherwise it checks `hint`, then gallops and bisects over single-entry probes.
   */
  async findCount(hint) {
    let low = 0; // known: at least `low` entries
    let high = null; // known: fewer than `high`
    let step = 1;
    if (hint === 0) {
      const generation = this.generation;
      const newest = Object.entries(await this.api.history(this.pageSize));
      if (newest.length < this.pageSize) {
        if (generation === this.generation) {
          newest.forEach(([promptId, entry], offset) => this.entries.set(offset, summarize(promptId, entry)));
        }
        return newest.length;
      }
      [low, step] = [this.pageSize, this.pageSize];
    } else {
      const last = await this.idAt(hint - 1);
      const known = this.entries.get(hint - 1)?.promptId;
      if (known !== undefined && last !== undefined && last !== known) return null;
      if (last !== undefined) low = hint;
      else high = hint;
    }
    if (high === null) {
      while (await this.exists(low + step - 1)) {
        low += step;
        step *= 2;
      }
      high = low + step;
    }
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (await this.exists(middle - 1)) low = middle;
      else high = middle;
    }
    return low;
  }
}
