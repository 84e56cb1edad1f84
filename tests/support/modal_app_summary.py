"""Import modal_tgi.py offline and print what a deploy would send, as JSON.

Run as `python -m tests.support.modal_app_summary` from the repo root, in a fresh process
(the DEPLOY_* knobs are read at import time). Deprecated Modal names are errors here.
Reads Modal's private local state (see shared/reference/modal.md): the public
`registered_functions` is itself deprecated in Modal 1.6.4.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings

import modal
import modal._image
from modal._partial_function import _find_partial_methods_for_user_cls, _PartialFunctionFlags
from modal._utils.async_utils import synchronizer
from modal_proto import api_pb2

from proxy.launcher.argv import build_launcher_args
from proxy.launcher.settings import build_child_env


def _nonlocals(loader) -> dict:
    return inspect.getclosurevars(loader).nonlocals


def dockerfile_commands(image) -> list[str]:
    """The image's Dockerfile lines, base image first, as the newest image builder writes them."""
    found = _nonlocals(image._load)
    bases = [*(found.get("base_images") or {}).values()]
    for name in ("base_image", "split_image"):  # add_local_* layers; from_registry(add_python=...)
        if name in found:
            bases.append(found[name])
    commands = [line for base in bases for line in dockerfile_commands(base)]
    build = found.get("dockerfile_function")
    if build is not None and "split_image" not in found:
        commands += build(modal._image.LATEST_IMAGE_BUILDER_VERSION).commands
    return commands


def local_python_sources(image) -> list[str]:
    """Modules added with add_local_python_source, from the image's top layer (they must come last)."""
    mount = _nonlocals(image._load).get("mount")
    return [entry.module_name for entry in mount._entries] if mount is not None else []


def uploaded_files(image) -> list[str]:
    """The container paths of every file those modules would upload."""
    mount = _nonlocals(image._load).get("mount")
    entries = mount._entries if mount is not None else []
    return sorted(str(remote) for entry in entries for _, remote in entry.get_files_to_upload())


def summarize() -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import modal_tgi
    state = synchronizer._translate_in(modal_tgi.app)._local_state
    (tag,) = state.functions  # one class service function
    function = state.functions[tag]
    info = function._function_info
    closure = _nonlocals(function._load)
    return {
        "deprecations": [str(w.message) for w in caught if issubclass(w.category, modal.exception.DeprecationError)],
        "app_name": modal_tgi.app.name,
        "classes": sorted(state.classes),
        "local_entrypoints": sorted(state.local_entrypoints),
        "web_endpoints": list(state.web_endpoints),
        "web_methods": {
            name: {
                "type": api_pb2.WebhookType.Name(method.webhook_config.type),
                "label": method.webhook_config.requested_suffix,
            }
            for name, method in closure["method_definitions"].items()
            if method.webhook_config.type
        },
        "requires_proxy_auth": {name: not web.unauthenticated for name, web in info.method_details.items()},
        "gpus": [list(gpu) for gpu in info.gpus],
        "volumes": {path: mount.name for path, mount in info.volumes.items()},
        "secrets": info.secrets,
        "scaledown_window": closure["scaledown_window"],
        "min_containers": closure["min_containers"],
        "max_containers": closure["max_containers"],
        "timeout": info.timeout,
        "startup_timeout": info.startup_timeout,
        "max_inputs": info.concurrency_info.max_inputs,
        "engine": modal_tgi.config.engine,
        "enable_memory_snapshot": closure["enable_memory_snapshot"],
        "experimental_options": closure["experimental_options"],
        "enter_before_snapshot": enter_methods(modal_tgi.TherapistEndpoint, _PartialFunctionFlags.ENTER_PRE_SNAPSHOT),
        "enter_after_snapshot": enter_methods(modal_tgi.TherapistEndpoint, _PartialFunctionFlags.ENTER_POST_SNAPSHOT),
        "engine_env": {k: v for k, v in build_child_env(modal_tgi.launch_settings, {}).items() if k.startswith("VLLM")},
        "image": dockerfile_commands(function._spec.image),
        "local_python_sources": local_python_sources(function._spec.image),
        "uploaded_files": uploaded_files(function._spec.image),
        "tgi_args": build_launcher_args(modal_tgi.launch_settings),
        "tgi_hf_home": build_child_env(modal_tgi.launch_settings, {})["HF_HOME"],
        "tgi_startup_deadline_s": modal_tgi.launch_settings.startup_timeout_s,
        "container_reads_same_config": _container_config(modal_tgi) == modal_tgi.config,
    }


def enter_methods(cls, flag) -> list[str]:
    """The class's @modal.enter methods that run before the memory snapshot (snap=True) or after it."""
    return sorted(_find_partial_methods_for_user_cls(synchronizer._translate_in(cls)._user_cls, flag))


def _container_config(modal_tgi):
    """DeployConfig as the container builds it: from the env the app hands it, nothing else."""
    for name in [name for name in os.environ if name.startswith("DEPLOY_")]:
        del os.environ[name]
    os.environ.update(modal_tgi.config.container_env())
    return modal_tgi.DeployConfig()


if __name__ == "__main__":
    print(json.dumps(summarize()))
