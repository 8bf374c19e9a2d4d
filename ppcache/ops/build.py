"""Builds and loads the fused operators: once per machine, lazily, quietly, and never fatally.

The first op call compiles `csrc/ppcache_ops.cc` (plus `csrc/ppcache_ops.cu` when Paddle is built with CUDA)
with `paddle.utils.cpp_extension.load` into a cache directory keyed by the sources, the flags, Paddle and
Python. Later processes load the cached library directly (no compiler, no subprocess). A file lock plus an
atomic rename make concurrent first builds safe. Compiler output goes to `build.log` in the cache, never to the
console. Any failure is reported by one `OpsBuildWarning` and the caller falls back to eager Paddle.

Environment:
    PPCACHE_OPS=auto|fused|eager   auto (default): fused when it builds, else eager with one warning;
                                   fused: a build failure raises; eager: never build, always eager Paddle.
    PPCACHE_OPS_CACHE=DIR          cache directory (default: $XDG_CACHE_HOME/ppcache/ops or ~/.cache/ppcache/ops).
    PPCACHE_OPS_THREADS=N          OpenMP threads of the CPU kernels (default: OpenMP's, i.e. OMP_NUM_THREADS,
                                   which Paddle sets to 1 at import unless the user set it).

A failed build is remembered in the cache (`*.failed`, with the compiler it used) so that later processes fall
back at once instead of retrying; it is retried when the compiler changes or the marker is deleted.
"""
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import threading
import warnings

NAME = "ppcache_ops"
CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
CXX_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off"]
CUDA_FLAGS = ["-O3", "--fmad=false"]
LD_FLAGS = ["-fopenmp"]
OPS = ("ppcache_taylor_eval", "ppcache_taylor_eval_add", "ppcache_ladder_update", "ppcache_rel_l1",
       "ppcache_channel_cosine", "ppcache_all_finite")


class OpsBuildWarning(UserWarning):
    """The fused operators could not be built or loaded; ppcache uses eager Paddle instead."""


class OpsBuildError(RuntimeError):
    pass


def cache_root():
    root = os.environ.get("PPCACHE_OPS_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "ppcache", "ops")
    return os.path.abspath(root)


def with_cuda():
    import paddle

    return bool(paddle.is_compiled_with_cuda())


def sources(cuda=None):
    cuda = with_cuda() if cuda is None else cuda
    names = ["ppcache_ops.cc"] + (["ppcache_ops.cu"] if cuda else [])
    return [os.path.join(CSRC, name) for name in names]


def cache_key(cuda=None):
    """Hash of everything the library depends on: sources, header, flags, Paddle, Python, platform."""
    import paddle

    cuda = with_cuda() if cuda is None else cuda
    digest = hashlib.sha256()
    for path in sources(cuda) + [os.path.join(CSRC, "ppcache_ops.h")]:
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + b"\0" + f.read())
    for part in (CXX_FLAGS, CUDA_FLAGS, LD_FLAGS, [paddle.__version__, getattr(paddle.version, "commit", ""),
                 os.path.dirname(paddle.__file__), sys.version, sys.platform, str(cuda)]):
        digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path):
    """Exclusive advisory lock (POSIX); elsewhere the atomic rename alone keeps concurrent builds safe."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _silenced(log_path):
    """Sends fds 1 and 2 (the compiler subprocess included), Python prints and warnings to `log_path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "a", buffering=1) as log:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            # sys.stdout/stderr may not be fds 1/2 (pytest, Jupyter): redirect the Python objects as well
            with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _compile(build_dir, cuda):
    """Compiles and registers the ops (paddle's `load` imports the library it built)."""
    from paddle.utils import cpp_extension

    kwargs = dict(extra_cxx_cflags=list(CXX_FLAGS), extra_ldflags=list(LD_FLAGS))
    if cuda:
        kwargs["extra_cxx_cflags"].append("-DPPCACHE_WITH_CUDA")
        kwargs["extra_cuda_cflags"] = list(CUDA_FLAGS) + ["-DPPCACHE_WITH_CUDA"]
    cpp_extension.load(name=NAME, sources=sources(cuda), build_directory=build_dir,
                       extra_include_paths=[CSRC], verbose=False, **kwargs)


def compiler():
    """The C++ compiler setuptools will run (CXX, else Python's configured CXX, else c++), or None."""
    command = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++"
    words = shlex.split(command)
    return shutil.which(words[0]) if words else None


def toolchain_fingerprint(cuda):
    """What a retry after a failed build depends on: a failure is remembered until this changes."""
    path = compiler()
    parts = {"CC": os.environ.get("CC"), "CXX": os.environ.get("CXX"), "compiler": path,
             "mtime": os.path.getmtime(path) if path else None}
    if cuda:
        parts["nvcc"] = shutil.which("nvcc")
    return parts


def _register(library):
    from paddle.utils.cpp_extension.extension_utils import load_op_meta_info_and_register_op

    load_op_meta_info_and_register_op(library)


def _library_path(build_dir):
    return os.path.join(build_dir, NAME, NAME + ".so")


def build_and_load(cuda):
    """Returns the path of the loaded library; raises OpsBuildError (with the log's path) on any failure."""
    root = cache_root()
    key = cache_key(cuda)
    final = os.path.join(root, f"{NAME}-{key}")
    try:
        os.makedirs(root, exist_ok=True)
        with _file_lock(os.path.join(root, f"{NAME}-{key}.lock")):
            library = _library_path(final)
            if os.path.exists(os.path.join(final, "ok")) and os.path.exists(library):
                with _silenced(os.path.join(final, "load.log")):
                    _register(library)
                with contextlib.suppress(OSError):
                    os.utime(os.path.join(final, "ok"))  # last use, for pruning
                return library
            failed_marker = os.path.join(root, f"{NAME}-{key}.failed")
            fingerprint = toolchain_fingerprint(cuda)
            if os.path.exists(failed_marker):
                with contextlib.suppress(OSError, ValueError):
                    with open(failed_marker) as f:
                        remembered = json.load(f)
                    if remembered.get("fingerprint") == fingerprint:
                        raise OpsBuildError(f"{remembered.get('error')} (remembered from an earlier attempt; "
                                            f"delete {failed_marker} to retry)")
            if fingerprint["compiler"] is None:
                raise OpsBuildError("no C++ compiler found (set CXX, or install g++/clang++)")
            staging = tempfile.mkdtemp(prefix=f"{NAME}-{key}.tmp-", dir=root)
            log_path = os.path.join(staging, "build.log")
            try:
                with _silenced(log_path):
                    _compile(staging, cuda)
                if not os.path.exists(_library_path(staging)):
                    raise OpsBuildError(f"the build produced no {NAME}.so")
                open(os.path.join(staging, "ok"), "w").close()
            except BaseException as error:
                failed = os.path.join(root, "last-failed-build.log")
                with contextlib.suppress(OSError):
                    shutil.copyfile(log_path, failed)
                shutil.rmtree(staging, ignore_errors=True)
                if not isinstance(error, Exception):  # Ctrl-C and friends: not a build failure to remember
                    raise
                message = f"{type(error).__name__}: {error} (compiler log: {failed})"
                with contextlib.suppress(OSError):
                    with open(failed_marker, "w") as f:
                        json.dump({"fingerprint": fingerprint, "error": message}, f)
                raise OpsBuildError(message) from error
            if os.path.exists(final):  # a stale or unfinished entry (no "ok" marker)
                shutil.rmtree(final, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(failed_marker)
            try:
                os.rename(staging, final)  # atomic: readers see a complete entry or none
            except OSError:  # another process won the race without the lock; ours is loaded already
                shutil.rmtree(staging, ignore_errors=True)
                return _library_path(staging)
        with contextlib.suppress(OSError):
            _prune(root, keep=f"{NAME}-{key}")
        return _library_path(final)
    except OpsBuildError:
        raise
    except Exception as error:  # pragma: no cover - unexpected environment problems
        raise OpsBuildError(f"{type(error).__name__}: {error}") from error


PRUNE_AFTER_S = 30 * 24 * 3600


def _prune(root, keep):
    """Drops the builds of other source versions unused for 30 days (other installs may share the cache) and
    staging directories of builds that died a day ago or more."""
    import time

    now = time.time()
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        if not entry.startswith(NAME + "-") or entry == keep or not os.path.isdir(path):
            continue
        marker = os.path.join(path, "ok")
        limit = 24 * 3600 if ".tmp-" in entry else PRUNE_AFTER_S
        with contextlib.suppress(OSError):
            last_use = os.path.getmtime(marker if os.path.exists(marker) else path)
            if now - last_use > limit:
                shutil.rmtree(path, ignore_errors=True)
                for suffix in (".lock", ".failed"):
                    with contextlib.suppress(OSError):
                        os.remove(path + suffix)


# ---- process-wide state ----------------------------------------------------------------------------------
_lock = threading.Lock()
_state = {"loaded": None, "error": None, "warned": False, "cuda": False}


def load(required=False):
    """True when the fused ops are registered in this process (building them if needed), else False.

    The first failure warns once; later calls return False at once. When `required` (or PPCACHE_OPS=fused) a
    failure raises OpsBuildError instead.
    """
    with _lock:
        if _state["loaded"] is None:
            cuda_error = None
            if with_cuda():
                try:
                    build_and_load(cuda=True)
                    _state["loaded"] = _state["cuda"] = True
                except OpsBuildError as error:  # no nvcc, say: keep the CPU kernels, GPU tensors go eager
                    cuda_error = str(error)
            if not _state["loaded"]:
                try:
                    build_and_load(cuda=False)
                    _state["loaded"] = True
                except OpsBuildError as error:
                    _state["loaded"], _state["error"] = False, str(error)
            if _state["loaded"] and cuda_error:
                warnings.warn(f"ppcache: CUDA fused ops unavailable, GPU tensors use eager Paddle ({cuda_error})",
                              OpsBuildWarning, stacklevel=5)
    if not _state["loaded"]:
        if required or os.environ.get("PPCACHE_OPS", "").strip().lower() == "fused":
            raise OpsBuildError(f"PPCACHE_OPS=fused but the fused ops are unavailable: {_state['error']}")
        if not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"ppcache: fused ops unavailable, using eager Paddle ({_state['error']})",
                          OpsBuildWarning, stacklevel=5)
    return _state["loaded"]


def error():
    """Why the fused ops are unavailable, or None."""
    return _state["error"]


def has_cuda_kernels():
    """True when the loaded library includes the CUDA kernels."""
    return bool(_state["loaded"] and _state["cuda"])
