// A virtual list: fixed-height rows inside a scrolling box, with elements only for the rows in view.

const OVERSCAN = 4;

/**
 * Rows of `rowHeight` pixels in `box` (a scrolling element). `keyOf(index)` names what a row shows, `renderRow(index)`
 * builds its element; a row keeps its element while its key stays in view, so shifted rows only move.
 * `onRange(start, end)` hears which rows are in view after each render.
 */
export class VirtualList {
  constructor(box, { rowHeight, keyOf, renderRow, onRange = () => {} }) {
    this.box = box;
    this.rowHeight = rowHeight;
    this.keyOf = keyOf;
    this.renderRow = renderRow;
    this.onRange = onRange;
    this.count = 0;
    this.rows = new Map(); // key -> element
    this.frame = null;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    box.append(this.spacer);
    box.addEventListener("scroll", () => this.renderSoon());
  }

  /** Set the number of rows; `shifted` rows were added on top, so a scrolled view moves down to stay put. */
  setCount(count, shifted = 0) {
    this.count = count;
    this.spacer.style.height = `${count * this.rowHeight}px`;
    if (shifted > 0 && this.box.scrollTop > 0) this.box.scrollTop += shifted * this.rowHeight;
  }

  /** The rows [start, end) that are (nearly) in view. */
  range() {
    const top = Math.floor(this.box.scrollTop / this.rowHeight) - OVERSCAN;
    const bottom = Math.ceil((this.box.scrollTop + this.box.clientHeight) / this.rowHeight) + OVERSCAN;
    return [Math.max(top, 0), Math.min(bottom, this.count)];
  }

  renderSoon() {
    this.frame ??= requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  /** Build the rows in view that changed, move the ones that only shifted, drop the rest. */
  render() {
    const [start, end] = this.range();
    const kept = new Map();
    for (let index = start; index < end; index += 1) {
      const key = this.keyOf(index);
      let row = this.rows.get(key);
      if (!row) {
        row = this.renderRow(index);
        row.classList.add("vlist-row");
        row.style.height = `${this.rowHeight}px`;
        this.box.append(row);
      }
      row.style.transform = `translateY(${index * this.rowHeight}px)`;
      row.dataset.index = index;
      kept.set(key, row);
    }
    for (const [key, row] of this.rows) if (!kept.has(key)) row.remove();
    this.rows = kept;
    this.onRange(start, end);
  }

  /** Rebuild every row in view (after the things they show changed). */
  rebuild() {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.render();
  }
}
