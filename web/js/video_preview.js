// Outputs that move, played inside their nodes: videos (mp4, webm) and animations (gif, animated webp, apng).
// Each player draws into an element the node paints on the canvas; the canvas is asked to redraw only while a
// player shows a new frame in view, and players whose node is out of view pause until it is back.

const VIDEO_EXTENSIONS = new Set(["mp4", "webm", "mov", "mkv", "m4v"]);
const IMAGE_TYPES = { gif: "image/gif", webp: "image/webp", png: "image/png", apng: "image/png" };
const PARKED_CHECK_MS = 250;
const DEFAULT_FRAME_MS = 100;

/**
 * What an `executed` output entry is: "video", "animation" or "image". VideoHelperSuite's entries carry a `format`
 * ("video/h264-mp4", "image/gif"); ComfyUI's savers flag animated webp/png with the output's `animated`.
 */
export function mediaKind(entry, output) {
  const format = entry.format ?? "";
  const extension = entry.filename.split(".").pop().toLowerCase();
  if (format.startsWith("video/") || VIDEO_EXTENSIONS.has(extension)) return "video";
  if (extension === "gif") return "animation";
  const animated = !!output?.animated?.[0] || format.startsWith("image/") || (output?.gifs ?? []).includes(entry);
  return animated && extension in IMAGE_TYPES ? "animation" : "image";
}

/** The MIME type an animation is decoded as. */
function imageType(entry) {
  if (entry.format?.startsWith("image/")) return entry.format;
  return IMAGE_TYPES[entry.filename.split(".").pop().toLowerCase()];
}

function overlaps(a, b) {
  return a[0] < b[0] + b[2] && a[0] + a[2] > b[0] && a[1] < b[1] + b[3] && a[1] + a[3] > b[1];
}

/** A looping, muted video; its element is a <video> the node draws each frame. */
class VideoPlayer {
  constructor(stage, node, url) {
    this.stage = stage;
    this.node = node;
    this.disposed = false;
    const video = document.createElement("video");
    Object.assign(video, { muted: true, loop: true, autoplay: true, playsInline: true, preload: "auto" });
    video.addEventListener("loadeddata", () => this.disposed || stage.showFrame(this));
    video.addEventListener("error", () => console.warn(`cannot play ${url}: ${video.error?.message ?? "error"}`));
    video.src = url;
    this.element = video;
    this.watching = false;
    this.resume();
  }

  resume() {
    this.element.play().catch(() => {}); // a rejected play() (disposed, not decodable) leaves it paused
    if (!this.watching) this.watch();
  }

  /** Redraw on each new video frame (requestVideoFrameCallback; animation frames where it is missing). */
  watch() {
    const video = this.element;
    const next = () => {
      this.watching = false;
      if (!this.disposed && !video.paused && this.stage.showFrame(this)) this.watch();
    };
    this.watching = true;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(next);
    else requestAnimationFrame(next);
  }

  park() {
    this.element.pause();
  }

  dispose() {
    this.disposed = true;
    this.element.pause();
    this.element.removeAttribute("src");
    this.element.load(); // lets the decoder and its buffers go
  }
}

/** An animated image decoded frame by frame (WebCodecs' ImageDecoder) into a canvas the node draws. */
class AnimationPlayer {
  constructor(stage, node, url, type) {
    this.stage = stage;
    this.node = node;
    this.disposed = false;
    this.parked = false;
    this.timer = null;
    this.decoder = null;
    this.frameIndex = 0;
    this.element = document.createElement("canvas");
    this.element.width = 0;
    this.element.height = 0;
    this.element.dataset.src = url; // which file it shows
    this.open(url, type).catch((error) => {
      if (!this.disposed) this.showStill(url, error);
    });
  }

  async open(url, type) {
    if (typeof ImageDecoder === "undefined" || !(await ImageDecoder.isTypeSupported(type))) {
      throw new Error(`no ImageDecoder for ${type}`);
    }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    this.decoder = new ImageDecoder({ data: response.body, type });
    await this.decoder.completed;
    if (this.disposed) return;
    this.due = performance.now();
    await this.step();
  }

  /** Without a decoder, the browser's own decoding of the file (its first frame, on a canvas). */
  showStill(url, reason) {
    console.warn(`${url} is shown still: ${reason.message ?? reason}`);
    const image = new Image();
    image.onload = () => {
      if (this.disposed) return;
      this.paint(image, image.naturalWidth, image.naturalHeight);
      this.stage.showFrame(this);
    };
    image.src = url;
  }

  paint(source, width, height) {
    if (this.element.width !== width || this.element.height !== height) {
      this.element.width = width;
      this.element.height = height;
    }
    const context = this.element.getContext("2d");
    context.clearRect(0, 0, width, height);
    context.drawImage(source, 0, 0);
  }

  async step() {
    this.timer = null;
    if (this.disposed || this.parked) return;
    const { image } = await this.decoder.decode({ frameIndex: this.frameIndex });
    if (this.disposed) {
      image.close();
      return;
    }
    this.paint(image, image.displayWidth, image.displayHeight);
    const frameMs = image.duration ? image.duration / 1000 : DEFAULT_FRAME_MS;
    image.close();
    const frameCount = this.decoder.tracks.selectedTrack.frameCount;
    if (!this.stage.showFrame(this) || frameCount < 2) return;
    this.frameIndex = (this.frameIndex + 1) % frameCount;
    this.due = Math.max(this.due + frameMs, performance.now());
    this.timer = setTimeout(() => this.step().catch(() => {}), this.due - performance.now());
  }

  park() {
    this.parked = true;
  }

  resume() {
    this.parked = false;
    if (!this.decoder || this.timer !== null) return;
    this.due = performance.now();
    this.step().catch(() => {});
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.decoder?.close();
  }
}

/** The players of every node's outputs, and the canvas they ask to redraw. */
export class OutputMedia {
  constructor(canvas, viewUrl) {
    this.canvas = canvas;
    this.viewUrl = viewUrl;
    this.players = new Map(); // node -> its players
    this.parked = new Set();
    this.parkedTimer = null;
  }

  /** The element that shows `entry` of `node`'s output: a playing video, an animation's canvas or an image. */
  create(node, entry, output) {
    const url = this.viewUrl(entry);
    const kind = mediaKind(entry, output);
    if (kind === "image") {
      const image = new Image();
      image.onload = () => node.setDirtyCanvas(true, false);
      image.src = url;
      return image;
    }
    const player = kind === "video"
      ? new VideoPlayer(this, node, url)
      : new AnimationPlayer(this, node, url, imageType(entry));
    if (!this.players.has(node)) this.players.set(node, []);
    this.players.get(node).push(player);
    return player.element;
  }

  /** Stop and forget `node`'s players. */
  release(node) {
    for (const player of this.players.get(node) ?? []) {
      player.dispose();
      this.parked.delete(player);
    }
    this.players.delete(node);
  }

  releaseAll() {
    for (const node of [...this.players.keys()]) this.release(node);
  }

  isVisible(node) {
    if (node.graph !== this.canvas.graph || node.flags.collapsed) return false;
    return overlaps(node.getBounding(), this.canvas.visible_area);
  }

  /**
   * A player has a new frame: redraw when its node is in view and answer true (go on playing); otherwise park
   * the player (paused until its node is back in view, or dropped if the node is gone) and answer false.
   */
  showFrame(player) {
    if (player.node.graph !== this.canvas.graph) {
      this.release(player.node);
      return false;
    }
    if (this.isVisible(player.node)) {
      this.canvas.setDirty(true, false);
      return true;
    }
    player.park();
    this.parked.add(player);
    this.parkedTimer ??= setInterval(() => this.checkParked(), PARKED_CHECK_MS);
    return false;
  }

  checkParked() {
    for (const player of [...this.parked]) {
      if (player.node.graph !== this.canvas.graph) this.release(player.node);
      else if (this.isVisible(player.node)) {
        this.parked.delete(player);
        player.resume();
      }
    }
    if (!this.parked.size) {
      clearInterval(this.parkedTimer);
      this.parkedTimer = null;
    }
  }
}

/** Feature entry: `executed` videos and animations play in their nodes; `editor.outputMedia` holds the players. */
export function install(editor) {
  const media = new OutputMedia(editor.canvas, editor.api.viewUrl);
  editor.runState.media = media;
  editor.outputMedia = media;
  editor.on("loading", () => media.releaseAll());
}
