"""Reelgraph's command line: ``serve`` (the default), ``run WORKFLOW``, ``check WORKFLOW``, ``extract-workflow FILE``,
``download REPO_ID|WORKFLOW`` and ``make-tiny-models DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.config import DEFAULT_EXTRA_MODEL_PATHS, GIB, REPO_ROOT, AppConfig, CacheConfig
from models.extra_paths import ExtraPathsError
from models.folders import DIFFUSERS_KEY, FOLDER_KEYS, ModelFolders
from models.memory_types import MemoryConfig
from server.config import DEFAULT_PORT, MIB, ServerConfig

IMPORT_NOISE_LOGGERS = ("torchao", "torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer")
"""Loggers that warn at import about things that do not concern a user (torchao's CUDA-only kernels on a CPU
machine, deprecations inside torchao, diffusers' safe globals for older torchao classes); only errors are shown."""

def _add_model_folder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir", type=Path, help="the model folders' root: checkpoints/, vae/, loras/, ... (default: ./weights)"
    )
    parser.add_argument(
        "--extra-model-paths-config",
        type=Path,
        metavar="YAML",
        help="more model folders, in ComfyUI's extra_model_paths.yaml format (default: ./extra_model_paths.yaml)",
    )


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", type=Path, help="where outputs are saved (default: ./output)")
    parser.add_argument("--input-dir", type=Path, help="where inputs are read from (default: ./input)")
    parser.add_argument("--temp-dir", type=Path, help="where previews are written (default: ./temp)")
    _add_model_folder_options(parser)
    parser.add_argument(
        "--vram-budget", type=float, metavar="GB", help="GPU memory for model weights (default: free memory measured)"
    )
    parser.add_argument(
        "--ram-budget", type=float, metavar="GB", help="RAM for model weights (default: available RAM measured)"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--cpu", dest="memory_mode", action="store_const", const="cpu", help="run models on the CPU even with a GPU"
    )
    modes.add_argument(
        "--highvram",
        dest="memory_mode",
        action="store_const",
        const="highvram",
        help="keep whole models on the GPU (no offloading; an out-of-memory error still steps down and retries)",
    )
    modes.add_argument(
        "--lowvram",
        dest="memory_mode",
        action="store_const",
        const="lowvram",
        help="offload models block by block: little GPU memory, some speed lost",
    )
    modes.add_argument(
        "--novram",
        dest="memory_mode",
        action="store_const",
        const="novram",
        help="offload models layer by layer: the least GPU memory, the slowest",
    )
    parser.add_argument(
        "--cache-ram", type=float, metavar="GB", help="RAM budget for cached node outputs (default: a quarter of RAM)"
    )
    parser.add_argument("--cache-none", action="store_true", help="cache nothing: every node runs every time")
    parser.add_argument(
        "--cache-all", action="store_true", help="cache every intermediate output, not only those an edit can reuse"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Reelgraph: node graphs for AI video.")
    verbs = parser.add_subparsers(dest="verb")
    serve = verbs.add_parser("serve", help="start the editor and the HTTP/WebSocket API (default)")
    _add_common_options(serve)
    serve.add_argument("--listen", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    serve.add_argument(
        "--data-dir", type=Path, help="where the queue, history and saved workflows live (default: ./data)"
    )
    serve.add_argument("--auth-token", help="require this token (Bearer header, or ?token= for WebSockets)")
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="allow --listen beyond loopback without a token (not advised)"
    )
    serve.add_argument("--max-upload-mb", type=float, default=100, help="largest accepted upload in MB (default: 100)")
    run = verbs.add_parser("run", help="run a saved workflow (UI or API format) without the server")
    _add_common_options(run)
    run.add_argument("workflow", type=Path, help="the workflow JSON file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE_ID.INPUT=VALUE",
        help="override an input before running (repeatable); VALUE is JSON or plain text",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--tiny-models",
        action="store_true",
        help="if none of the models the workflow lists is there yet, write tiny random-weight stand-ins to "
        "--models-dir first (offline demos; output is noise; real files are never replaced)",
    )
    check = verbs.add_parser(
        "check",
        help="say whether a shared workflow runs here: node types to install, inputs we do not support, missing models",
    )
    check.add_argument(
        "workflow", type=Path, help="a workflow JSON file (UI or API format), or a PNG/WebP/mp4/webm carrying one"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--input-dir", type=Path, help="the input folder file choices list (default: ./input)")
    _add_model_folder_options(check)
    extract = verbs.add_parser(
        "extract-workflow", help="print the workflow embedded in a saved image or video (PNG, WebP, GIF, mp4, webm)"
    )
    extract.add_argument("file", type=Path, help="the image or video file")
    extract.add_argument(
        "--api", action="store_true", help="print the API-format prompt instead of the editor workflow"
    )
    tiny = verbs.add_parser(
        "make-tiny-models", help="write tiny random-weight stand-ins of the released models (offline tests, demos)"
    )
    tiny.add_argument("dir", type=Path, help="the models folder to write into (its checkpoints/, vae/, ... layout)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    fetch = verbs.add_parser(
        "download", help="download a model repo, or some of its files, from the Hugging Face Hub into a model folder"
    )
    fetch.add_argument(
        "repo_id",
        metavar="REPO_ID|WORKFLOW",
        help="the repo, as namespace/name; or a workflow file (JSON, PNG, WebP, mp4, webm): its missing models that "
        "have a Hugging Face URL are fetched into their folders",
    )
    fetch.add_argument(
        "--folder",
        choices=FOLDER_KEYS,
        metavar="KEY",
        help="the model folder: diffusers (default) keeps the repo as <diffusers>/<repo name>/; any other key puts "
        f"the files directly in that folder. One of: {', '.join(FOLDER_KEYS)}",
    )
    fetch.add_argument(
        "--include",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="only repo files matching these globs ('*' crosses '/'); default: safetensors/gguf weights, plus "
        "json/txt/model configs and tokenizers for diffusers. Pickles are skipped when the repo has safetensors",
    )
    fetch.add_argument("--revision", help="a branch, tag or commit (default: main)")
    _add_model_folder_options(fetch)
    return parser


def app_config_from_args(args: argparse.Namespace) -> AppConfig:
    """The engine's configuration from the options ``serve`` and ``run`` share."""
    cache = CacheConfig.default(args.cache_ram)
    if args.cache_none or args.cache_all:
        cache = CacheConfig(cache.max_bytes, cache.min_free_bytes, args.cache_none, args.cache_all)
    return AppConfig.from_dirs(
        args.output_dir,
        args.input_dir,
        args.temp_dir,
        cache,
        args.models_dir,
        extra_model_paths_file=args.extra_model_paths_config,
        default_extra_model_paths=DEFAULT_EXTRA_MODEL_PATHS,
        memory=MemoryConfig(
            device_budget_bytes=None if args.vram_budget is None else int(args.vram_budget * GIB),
            ram_budget_bytes=None if args.ram_budget is None else int(args.ram_budget * GIB),
            mode=args.memory_mode or "auto",
        ),
    )


def server_config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    """The server's configuration from ``serve``'s options; contradictions are argument errors (exit 2)."""
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_upload_mb <= 0:
        parser.error("--max-upload-mb must be positive")
    config = ServerConfig(
        data_dir=(args.data_dir or REPO_ROOT / "data").resolve(),
        host=args.listen,
        port=args.port,
        auth_token=args.auth_token,
        insecure_no_auth=args.insecure_no_auth,
        max_upload_bytes=int(args.max_upload_mb * MIB),
    )
    try:
        config.check()
    except ValueError as exc:
        parser.error(str(exc))
    return config


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "extract-workflow":
        from app.extract import extract_workflow

        return extract_workflow(args.file, api=args.api)
    if args.verb == "make-tiny-models":
        from app.tiny import make_tiny_models

        return make_tiny_models(args.dir, args.seed)
    if args.verb in ("download", "check"):
        from app.download import model_folders_for

        try:
            folders = model_folders_for(args.models_dir, args.extra_model_paths_config)
        except ExtraPathsError as exc:
            parser.error(str(exc))
        return _check_or_download(args, parser, folders)
    for option in ("cache_ram", "vram_budget", "ram_budget"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            parser.error(f"--{option.replace('_', '-')} must be a positive number of GB")
    if args.cache_none and args.cache_all:
        parser.error("--cache-none and --cache-all contradict each other")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in IMPORT_NOISE_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        config = app_config_from_args(args)
    except ExtraPathsError as exc:
        parser.error(str(exc))
    if args.verb == "run":
        from app.headless import run_workflow

        return run_workflow(
            config,
            args.workflow,
            args.overrides,
            show_progress=not args.no_progress,
            verbose=args.verbose,
            tiny_models=args.tiny_models,
        )
    server_config = server_config_from_args(args, parser)
    from app.first_run import log_serve_offer
    from server.app import serve

    log_serve_offer(config.model_folders, config.models_dir)
    return serve(config, server_config)


def _check_or_download(args: argparse.Namespace, parser: argparse.ArgumentParser, folders: ModelFolders) -> int:
    """``check WORKFLOW``, ``download WORKFLOW`` (when the argument is a file) or ``download REPO_ID``."""
    from app.check import check_command, check_registry
    from app.download import download_command, download_workflow_command

    if args.verb == "check":
        return check_command(args.workflow, check_registry(folders, args.input_dir), folders, as_json=args.json)
    workflow = Path(args.repo_id)
    if not workflow.is_file():
        return download_command(folders, args.repo_id, args.folder or DIFFUSERS_KEY, args.include, args.revision)
    if args.folder or args.include or args.revision:
        parser.error("--folder, --include and --revision choose files of a repo; a workflow file names its own")
    return download_workflow_command(workflow, check_registry(folders), folders)


if __name__ == "__main__":
    sys.exit(main())
