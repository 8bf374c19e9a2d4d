"""Generate one image (or, on a video pipeline, one GIF) from a ppcache YAML config.

    python tools/infer.py --config configs/baseline.yaml [--prompt P] [--seed N] [--steps N]
                          [--height H --width W] [--frames N] [--model PATH] [--out FILE.png]

A video pipeline (Wan2.1, HunyuanVideo, CogVideoX) writes the output path as .gif, and --compare writes the
side-by-side video.

Under `python -m paddle.distributed.launch --nproc_per_node N` a FLUX generation is split across the N processes
(sequence parallelism: `parallel.sequence` is N there unless the config says otherwise); rank 0 writes the files.

Bad input (unknown key, wrong type, missing model, bad resolution) exits with code 2 and one line on stderr;
the output file is written only when generation succeeded.
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "baseline.yaml")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML file with model/run/cache sections")
    parser.add_argument("--prompt")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int, help="video pipelines: frames to generate (default: the count the "
                                                   "checkpoint records, else the pipeline's)")
    parser.add_argument("--model",
                        help="bundled name (tiny-flux, tiny-sd3, tiny-pixart, tiny-wan) or pipeline directory")
    parser.add_argument("--pipeline", choices=("ppcache", "ppdiffusers"),
                        help="pipeline classes: ppcache's own, or the installed PPDiffusers' (model.pipeline)")
    parser.add_argument("--out", help="output PNG path")
    parser.add_argument("--compare", action="store_true",
                        help="also run uncached with the same seed; print speed-up, compute fraction, SSIM/PSNR "
                             "and save both images side by side (<out>_compare.png)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for --compare (median)")
    return parser.parse_args(argv)


def overrides_from(args):
    run = {key: getattr(args, key) for key in ("prompt", "seed", "steps", "height", "width", "frames")
           if getattr(args, key) is not None}
    if args.out is not None:
        run["output"] = args.out
    overrides = {"run": run}
    model = {key: getattr(args, key) for key in ("model", "pipeline") if getattr(args, key) is not None}
    if model:
        overrides["model"] = {"path" if key == "model" else key: value for key, value in model.items()}
    return overrides


def output_path(path, result):
    """The run's output path, as .gif for a video (a list of frames) and .png for an image."""
    return os.path.splitext(path)[0] + (".gif" if isinstance(result, list) else ".png")


def save_output(result, path):
    """Writes an image as PNG or a list of frames as a looping GIF, through a temporary file, so a failed run never
    leaves a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".partial"
    if isinstance(result, list):
        result[0].save(tmp, format="GIF", save_all=True, append_images=result[1:], duration=125, loop=0)
    else:
        result.save(tmp, format="PNG")
    os.replace(tmp, path)


def one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv=None):
    args = parse_args(argv)
    warnings.formatwarning = one_line_warning
    import ppcache
    from ppcache.config import load_config
    from ppcache.pipelines.prepare import prepare
    from ppcache.adapters import adapter_for
    from ppcache.pipelines.run import generate
    from ppcache.parallel.sequence import launched_world_size

    try:
        config = load_config(args.config, overrides_from(args))
        sequence = config.parallel.sequence
        if sequence == 1 and launched_world_size() > 1:
            sequence = launched_world_size()  # under the launcher: one generation split across its processes
        start = time.perf_counter()
        pipe, group = prepare(config, sequence)
        load_seconds = time.perf_counter() - start
        rank = group.rank if group is not None else 0
        if args.compare and config.cache.method != "none":
            from ppcache.bench.compare import compare, format_report, side_by_side

            report, reference, image = compare(pipe, config.run, config.cache, args.repeats)
            seconds = report["cached_seconds"]
            compare_path = output_path(os.path.splitext(config.run.output)[0] + "_compare.png", image)
            if rank == 0:  # every rank holds the same image
                save_output(side_by_side(reference, image), compare_path)
        else:
            report = None
            ppcache.apply_cache(pipe, config.cache)
            image, seconds = generate(pipe, config.run)
        saved = output_path(config.run.output, image)
        if rank == 0:
            save_output(image, saved)
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if rank != 0:
        return 0
    transformer = pipe.transformer
    blocks = len(adapter_for(transformer).block_slots())
    dtype = str(transformer.dtype).replace("paddle.", "")
    print(f"model: {config.model.path} ({type(pipe).__module__.split('.')[0]} {type(pipe).__name__}, {blocks} "
          f"transformer blocks, {dtype})")
    print(f"prompt: {config.run.prompt!r}  seed: {config.run.seed}")
    frames = f"  frames: {len(image)}" if isinstance(image, list) else ""
    print(f"steps: {config.run.steps}  resolution: {config.run.width}x{config.run.height}{frames}  "
          f"cache: {config.cache.method}")
    if sequence > 1:
        print(f"parallel: image tokens split across {sequence} ranks (sequence parallelism)")
    print(f"wall time: {seconds:.2f} s generation, {load_seconds:.2f} s loading")
    print(f"saved: {saved}")
    if report is not None:
        print(format_report(report))
        print(f"saved: {compare_path} (uncached | cached)")
    elif config.cache.method != "none":
        stats = ppcache.summary(pipe)
        print(f"compute fraction: {stats['compute_fraction']:.3f}; full steps {stats['full_steps']} of "
              f"{stats['steps']}; cache memory {stats['cache_bytes'] / 1024:.1f} KiB"
              + (f" per rank ({sequence} ranks)" if sequence > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
