// The track editor of TracksFromJSON nodes: an "Edit tracks" button opens a dialog where each track is drawn as a
// polyline of clicked points on a canvas of the node's width x height. Every edit writes all tracks into the node's
// tracks_json widget, each sampled evenly along its length into `frames` points (DEFAULT_FRAMES when frames is 0),
// as [[{"x": .., "y": ..}, ...], ...] in canvas pixels: the JSON the node parses, so the server needs nothing new.
// The clicked points are kept in the node's properties, so reopening edits them rather than the samples.

import { element } from "./dom.js";

const NODE_TYPE = "TracksFromJSON";
const DEFAULT_FRAMES = 81; // samples per track when the node's frames is 0 (keep the tracks as given)
const DRAWING_BOX = [720, 480]; // the largest drawing area, in CSS pixels; the canvas is scaled to fit it
const GRAB_RADIUS = 8; // how near (CSS pixels) a press must be to a point to drag it
const MAX_READ_POINTS = 16; // points kept per track when tracks are read from JSON written elsewhere
const GRID_DIVISIONS = 8;
const GOLDEN_RATIO_CONJUGATE = 0.6180339887498949; // the hue step of models/control/tracks.py's track colours
const TRACK_SATURATION = 0.85;

/** The colour render_tracks gives track `index` (hues a golden-ratio step apart), as CSS. */
export function trackColour(index) {
  const hue = ((index * GOLDEN_RATIO_CONJUGATE) % 1) * 6;
  const channel = (shift) => {
    const k = (shift + hue) % 6;
    const value = 1 - TRACK_SATURATION * Math.max(0, Math.min(k, 4 - k, 1));
    return Math.round(value * 255);
  };
  return `rgb(${channel(5)}, ${channel(3)}, ${channel(1)})`;
}

/** `count` points spread evenly along the polyline through `points` (the first and last are kept). */
export function sampleTrack(points, count) {
  const lengths = [0];
  for (let i = 1; i < points.length; i++) {
    const [a, b] = [points[i - 1], points[i]];
    lengths.push(lengths[i - 1] + Math.hypot(b[0] - a[0], b[1] - a[1]));
  }
  const total = lengths.at(-1);
  if (total === 0) return Array.from({ length: count }, () => [...points[0]]);
  const samples = [];
  let segment = 1;
  for (let k = 0; k < count; k++) {
    const distance = count === 1 ? 0 : (total * k) / (count - 1);
    while (segment < points.length - 1 && lengths[segment] < distance) segment++;
    const [a, b] = [points[segment - 1], points[segment]];
    const span = lengths[segment] - lengths[segment - 1];
    const t = span ? Math.min(1, (distance - lengths[segment - 1]) / span) : 0;
    samples.push([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]);
  }
  return samples;
}

const round2 = (value) => Math.round(value * 100) / 100;

/** The tracks (lists of [x, y]; empty ones left out) as tracks_json, each sampled into `count` points. */
export function tracksToJson(tracks, count) {
  const sampled = tracks.filter((track) => track.length)
    .map((track) => sampleTrack(track, count).map(([x, y]) => ({ x: round2(x), y: round2(y) })));
  return JSON.stringify(sampled);
}

/** Whether a decoded JSON item is one point ({x, y} or [x, y]) rather than a track. */
const isPoint = (item) => item !== null && typeof item === "object" && (!Array.isArray(item) || !Array.isArray(item[0]));

function toPoint(point, where) {
  const [x, y] = Array.isArray(point) ? point : [point?.x, point?.y];
  if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error(`${where} is not {"x": .., "y": ..} or [x, y]`);
  return [x, y];
}

/**
 * The tracks (lists of [x, y]) of a tracks_json value, in the formats the node reads: tracks of {x, y} points or
 * [x, y] pairs, a single bare track, or that JSON encoded once more as a string. A blank value holds no tracks.
 */
export function parseTracks(text) {
  let data = String(text).trim() || "[]";
  for (let depth = 0; typeof data === "string" && depth < 3; depth++) data = JSON.parse(data);
  if (!Array.isArray(data)) throw new Error("it is not a list of tracks");
  const tracks = data.length && isPoint(data[0]) ? [data] : data;
  return tracks.map((track, index) => {
    if (!Array.isArray(track)) throw new Error(`track ${index} is not a list of points`);
    return track.map((point, number) => toPoint(point, `track ${index}, point ${number}`));
  });
}

/** At most `count` of a track's points, evenly picked, the first and last kept. */
function thin(track, count) {
  if (track.length <= count) return track;
  return Array.from({ length: count }, (_, k) => track[Math.round((k * (track.length - 1)) / (count - 1))]);
}

const widgetNamed = (node, name) => node.widgets.find((widget) => widget.name === name);

/** The dialog that edits the tracks of one node at a time. */
class TrackEditor {
  constructor(editor) {
    this.editor = editor;
    this.node = null;
    this.tracks = [[]];
    this.current = 0;
    this.dragging = null;
    this.dialog = element("dialog", "te-dialog");
    this.title = element("b", "te-title");
    this.message = element("p", "te-message");
    this.canvas = element("canvas", "te-canvas");
    this.state = element("span", "te-state");
    const buttons = element("div", "te-buttons");
    buttons.append(
      this.button("New track", "Start another track", () => this.newTrack()),
      this.button("Clear", "Remove every track", () => this.clear()),
      this.state,
      this.button("Done", "Close the editor", () => this.dialog.close()),
    );
    const help = element("p", "te-help", "Click to add a point to the current track; drag a point to move it.");
    this.dialog.append(this.title, help, this.message, this.canvas, buttons);
    this.dialog.addEventListener("close", () => {
      this.node = null;
      this.dragging = null;
    });
    this.canvas.addEventListener("pointerdown", (event) => this.press(event));
    this.canvas.addEventListener("pointermove", (event) => this.move(event));
    this.canvas.addEventListener("pointerup", () => { this.dragging = null; });
    document.body.append(this.dialog);
  }

  button(label, title, onClick) {
    const button = element("button", "", label);
    button.title = title;
    button.onclick = onClick;
    return button;
  }

  /** Open on `node`: its saved points when tracks_json is what the editor last wrote, else the JSON's tracks. */
  open(node) {
    this.node = node;
    this.width = widgetNamed(node, "width").value;
    this.height = widgetNamed(node, "height").value;
    this.scale = Math.min(DRAWING_BOX[0] / this.width, DRAWING_BOX[1] / this.height);
    this.canvas.width = Math.round(this.width * this.scale);
    this.canvas.height = Math.round(this.height * this.scale);
    this.title.textContent = `Tracks of ${node.title} #${node.id}: ${this.width} x ${this.height} pixels`;
    this.showMessage("");
    const text = widgetNamed(node, "tracks_json").value;
    const saved = node.properties.trackEditor;
    if (saved?.json === text) this.tracks = saved.tracks.map((track) => track.map((point) => [...point]));
    else {
      try {
        this.tracks = parseTracks(text).map((track) => thin(track, MAX_READ_POINTS));
      } catch (error) {
        this.tracks = [];
        this.showMessage(`tracks_json cannot be read (${error.message}); it is kept until you draw here.`);
      }
    }
    if (!this.tracks.length) this.tracks.push([]);
    this.current = this.tracks.length - 1;
    this.dialog.showModal();
    this.draw();
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  /** Samples per track: the node's frames, or DEFAULT_FRAMES when it is 0. */
  samples() {
    return widgetNamed(this.node, "frames").value || DEFAULT_FRAMES;
  }

  /** Write the tracks into the node's tracks_json widget and keep the drawn points with the node. */
  commit() {
    const json = tracksToJson(this.tracks, this.samples());
    widgetNamed(this.node, "tracks_json").value = json;
    const tracks = this.tracks.filter((track) => track.length);
    this.node.properties.trackEditor = { json, tracks: tracks.map((track) => track.map((point) => [...point])) };
    this.showMessage("");
    this.node.setDirtyCanvas(true, true);
    this.editor.changed();
  }

  /** The canvas pixel (unclamped) under a pointer event. */
  pointOf(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * this.width,
      ((event.clientY - rect.top) / rect.height) * this.height,
    ];
  }

  /** The point within GRAB_RADIUS of an event, nearest first: {track, index}, or null. */
  pointNear(event) {
    const [x, y] = this.pointOf(event);
    let nearest = null;
    let best = GRAB_RADIUS / this.scale;
    this.tracks.forEach((track, trackIndex) => track.forEach(([px, py], index) => {
      const distance = Math.hypot(px - x, py - y);
      if (distance <= best) [nearest, best] = [{ track: trackIndex, index }, distance];
    }));
    return nearest;
  }

  /** A press drags the point under it, or adds a point to the current track (and drags that). */
  press(event) {
    if (event.button !== 0) return;
    this.dragging = this.pointNear(event);
    if (this.dragging) this.current = this.dragging.track;
    else {
      const track = this.tracks[this.current];
      track.push(this.clamped(this.pointOf(event)));
      this.dragging = { track: this.current, index: track.length - 1 };
      this.commit();
    }
    this.canvas.setPointerCapture(event.pointerId);
    this.draw();
  }

  move(event) {
    if (!this.dragging) return;
    this.tracks[this.dragging.track][this.dragging.index] = this.clamped(this.pointOf(event));
    this.commit();
    this.draw();
  }

  clamped([x, y]) {
    return [Math.min(this.width, Math.max(0, x)), Math.min(this.height, Math.max(0, y))];
  }

  /** Make the empty track (added when there is none) the current one. */
  newTrack() {
    const empty = this.tracks.findIndex((track) => !track.length);
    this.current = empty < 0 ? this.tracks.push([]) - 1 : empty;
    this.draw();
  }

  clear() {
    this.tracks = [[]];
    this.current = 0;
    this.commit();
    this.draw();
  }

  draw() {
    const context = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    context.fillStyle = "#1b1d21";
    context.fillRect(0, 0, width, height);
    context.strokeStyle = "#3a3f48";
    context.lineWidth = 1;
    for (let k = 1; k < GRID_DIVISIONS; k++) {
      const x = Math.round((k * width) / GRID_DIVISIONS) + 0.5;
      const y = Math.round((k * height) / GRID_DIVISIONS) + 0.5;
      context.beginPath();
      context.moveTo(x, 0);
      context.lineTo(x, height);
      context.moveTo(0, y);
      context.lineTo(width, y);
      context.stroke();
    }
    this.tracks.forEach((track, index) => this.drawTrack(context, track, index));
    const drawn = this.tracks.filter((track) => track.length).length;
    const points = this.tracks[this.current].length;
    this.state.textContent = `track ${this.current + 1} of ${this.tracks.length} (${points} points); `
      + `${drawn} drawn, ${this.samples()} samples each`;
  }

  drawTrack(context, track, index) {
    const isCurrent = index === this.current;
    const points = track.map(([x, y]) => [x * this.scale, y * this.scale]);
    context.strokeStyle = context.fillStyle = trackColour(index);
    context.lineWidth = isCurrent ? 3 : 2;
    context.beginPath();
    points.forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.stroke();
    for (const [x, y] of points) {
      context.beginPath();
      context.arc(x, y, isCurrent ? 5 : 4, 0, 2 * Math.PI);
      context.fill();
      if (isCurrent) {
        context.strokeStyle = "#fff";
        context.lineWidth = 1.5;
        context.stroke();
      }
    }
  }
}

/** Feature entry: TracksFromJSON nodes get an "Edit tracks" button (not saved in widgets_values). */
export function install(editor) {
  const { LiteGraph } = editor;
  const Base = LiteGraph.registered_node_types[NODE_TYPE];
  if (!Base) return; // a server without the tracks nodes
  editor.addStylesheet("css/track_editor.css");
  const trackEditor = new TrackEditor(editor);
  class TracksNode extends Base {
    constructor(title) {
      super(title);
      const button = this.addWidget("button", "Edit tracks", null, () => trackEditor.open(this), {});
      button.serialize = false;
      this.size = this.computeSize();
    }
  }
  LiteGraph.registerNodeType(NODE_TYPE, TracksNode);
  TracksNode.category = Base.category; // registering sets it from the type name
}
