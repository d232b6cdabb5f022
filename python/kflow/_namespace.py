"""The whole namespace: every training job (anyone's), PVCs, ConfigMaps, Notebook servers and
StorageClasses, page by page; PVCs and Notebook servers made and removed; a Notebook server
reached through a port-forward over the API server (no kubectl).

    ns = kflow.namespace()
    for job in ns.training_jobs(all=True):
        print(job["name"], job["kind"], job["phase"])
    ns.create_pvc("data", size="20Gi")
    ns.create_notebook("lab", image="jupyter-scipy", cpu="1", memory="2Gi")
    with ns.open_notebook("lab") as forward:
        print(forward.url)
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from . import _native
from ._options import _fail
from ._pages import Page, _cursor, _limit

Row = Dict[str, Any]

# Rows per request when a caller asks for every page: fewer round trips, as kubectl's chunks.
_ALL_PAGE = 500


def _name(argument: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(argument, value, "a name (str)")
    return value


def _optional_text(argument: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(argument, value, "a string such as \"10Gi\" or \"500m\"")
    return str(value)


class PortForward:
    """A local port forwarded to a Notebook server; `url` opens it. Stops on `close()` or at
    the end of a `with` block. Each connection gets its own stream, so a dropped stream ends
    only that connection and the next one works again."""

    def __init__(self, native: Any):
        self._native = native

    @property
    def url(self) -> str:
        return self._native.url

    @property
    def local_port(self) -> int:
        return self._native.local_port

    @property
    def connections(self) -> int:
        """Local connections forwarded so far."""
        return self._native.counts()[0]

    @property
    def failed_connections(self) -> int:
        """Connections whose forward stream could not be opened."""
        return self._native.counts()[1]

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "PortForward":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PortForward({self.url!r})"


class Namespace:
    """One namespace of the configured cluster; made by `kflow.namespace()`."""

    def __init__(self, native: Any):
        self._native = native

    @property
    def name(self) -> str:
        return self._native.name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def _list(self, kind: str, limit: Any, cursor: Optional[str], all: bool) -> Page:
        limit, cursor = _limit(limit), _cursor(cursor)
        if all and limit is None:
            limit = _ALL_PAGE
        items: List[Row] = []
        while True:
            page = json.loads(self._native.page_json(kind, limit, cursor))
            items.extend(page["items"])
            cursor = page["next"]
            if not all:
                return Page(items, cursor, page.get("total"))
            if cursor is None:
                return Page(items, None, len(items))

    def training_jobs(self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False) -> Page:
        """Training jobs of every kind the cluster serves, kflow's and anyone's: `name`,
        `kind`, `phase`, `reason`, `replicas`, `made_by_kflow`, `created_at`. `kflow.get(name)`
        follows any of them."""
        return self._list("jobs", limit, cursor, all)

    def pvcs(self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False) -> Page:
        """PVCs: `name`, `phase`, `size`, `storage_class`, `access_modes`, `mounted_by`."""
        return self._list("pvcs", limit, cursor, all)

    def config_maps(self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False) -> Page:
        """ConfigMaps: `name`, `keys` (each `key` with its `bytes`), `code_of` (the job whose
        code a kflow code part carries)."""
        return self._list("configmaps", limit, cursor, all)

    def notebooks(self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False) -> Page:
        """Notebook servers: `name`, `state` (Ready, Starting, Stopped, Error), `reason`,
        `image`, `cpu`, `memory`, `gpus`, `gpu_vendor`, `volumes`, `url_path`."""
        return self._list("notebooks", limit, cursor, all)

    def storage_classes(self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False) -> Page:
        """StorageClasses: `name`, `provisioner`, `default`, `reclaim_policy`,
        `volume_binding_mode`."""
        return self._list("storageclasses", limit, cursor, all)

    def watch(self, kind: str, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Keeps a listing live: yields `{"change": "upsert", "row": {...}}` for every current
        object, then one for each change, and `{"change": "delete", "name": ..., "kind": ...}`
        when one goes. `kind` is jobs, pvcs, configmaps, notebooks or storageclasses. Ends
        after `timeout` seconds without a change (None: never)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
            raise _fail("timeout", timeout, "seconds (a number, 0 or more) or None")
        native = self._native.watch(_name("kind", kind))
        step = 0.5 if timeout is None else min(0.5, float(timeout))
        quiet = 0.0
        while True:
            changes = json.loads(native.next_json(step))
            if changes:
                quiet = 0.0
                yield from changes
                continue
            quiet += step
            if timeout is not None and quiet >= timeout:
                return

    def create_pvc(self, name: str, size: Union[str, None] = None, storage_class: Optional[str] = None,
                   access_mode: Optional[str] = None) -> Row:
        """Creates a PVC; `size` defaults to `defaultPVCsize` (else 10Gi), the class to the
        cluster's default, the access mode to ReadWriteOnce (RWO, ROX, RWX, RWOP accepted)."""
        return json.loads(self._native.create_pvc(
            _name("name", name), _optional_text("size", size),
            _optional_text("storage_class", storage_class), _optional_text("access_mode", access_mode)))

    def delete_pvc(self, name: str, force: bool = False) -> None:
        """Deletes a PVC; refused (ConflictError) while running pods mount it, unless `force`."""
        if not isinstance(force, bool):
            raise _fail("force", force, "True or False")
        self._native.delete_pvc(_name("name", name), force)

    def notebook_images(self) -> Dict[str, Any]:
        """The images a Notebook server can be made from: `default`, `options` and
        `from_deployment` (the deployment's spawner config, read when signed in)."""
        return json.loads(self._native.notebook_images_json())

    def create_notebook(
        self,
        name: str,
        image: Optional[str] = None,
        custom_image: bool = False,
        cpu: Union[str, int, float, None] = None,
        memory: Union[str, None] = None,
        gpus: int = 0,
        gpu_vendor: Optional[str] = None,
        workspace: Union[str, bool, None] = None,
        workspace_size: Optional[str] = None,
        data_volumes: Sequence[str] = (),
        wait: bool = True,
        timeout: float = 300,
    ) -> Row:
        """Creates a Notebook server and (with `wait`) returns once it is Ready; a server that
        cannot start raises with the reason (image pull, unschedulable). `workspace`: None
        makes a new `<name>-workspace` PVC, a name mounts that PVC, False mounts none."""
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise _fail("gpus", gpus, "a whole number of GPUs, 0 or more")
        if workspace is False:
            workspace = ""
        elif workspace is not None and not isinstance(workspace, str):
            raise _fail("workspace", workspace, "a PVC name, None (a new one) or False (none)")
        if isinstance(data_volumes, str) or not all(isinstance(v, str) for v in data_volumes):
            raise _fail("data_volumes", data_volumes, "a list of PVC names")
        row = json.loads(self._native.create_notebook(
            _name("name", name), _optional_text("image", image), bool(custom_image),
            _optional_text("cpu", cpu), _optional_text("memory", memory), gpus,
            _optional_text("gpu_vendor", gpu_vendor), workspace,
            _optional_text("workspace_size", workspace_size), list(data_volumes)))
        if wait:
            return self.wait_notebook(name, timeout)
        return row

    def notebook(self, name: str) -> Row:
        """One Notebook server's row."""
        return json.loads(self._native.notebook_json(_name("name", name)))

    def wait_notebook(self, name: str, timeout: float = 300) -> Row:
        """Waits until the server is Ready (raises with the reason when it cannot start)."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise _fail("timeout", timeout, "seconds (a number, 0 or more)")
        return json.loads(self._native.wait_notebook_json(_name("name", name), float(timeout)))

    def stop_notebook(self, name: str) -> Row:
        """Stops the server (Kubeflow's stop annotation); its volumes stay."""
        return json.loads(self._native.stop_notebook(_name("name", name)))

    def start_notebook(self, name: str, wait: bool = True, timeout: float = 300) -> Row:
        """Starts a stopped server; with `wait`, returns once it is Ready."""
        row = json.loads(self._native.start_notebook(_name("name", name)))
        return self.wait_notebook(name, timeout) if wait else row

    def delete_notebook(self, name: str) -> None:
        """Deletes the server; its PVCs stay (`delete_pvc` removes them)."""
        self._native.delete_notebook(_name("name", name))

    def open_notebook(self, name: str, port: Optional[int] = None) -> PortForward:
        """Forwards a local port (`port`, or a free one) to a Ready server; `.url` is its
        address there. Close it (or use `with`) to stop."""
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise _fail("port", port, "a TCP port number (1-65535)")
        return PortForward(self._native.forward_notebook(_name("name", name), port))

    def dashboard_url(self) -> str:
        """The central dashboard's URL for this namespace."""
        return self._native.dashboard_url()


def namespace(name: Optional[str] = None) -> Namespace:
    """The namespace `name` of the configured cluster (default: the connection's: the signed-in
    profile's, or the kubeconfig context's)."""
    if name is not None and not isinstance(name, str):
        raise _fail("name", name, "a namespace name (str)")
    return Namespace(_native.namespace(name))


def dashboard(namespace_name: Optional[str] = None, open_browser: bool = True) -> str:
    """Opens Kubeflow's central dashboard for the namespace in the browser (when there is one)
    and returns its URL."""
    url = namespace(namespace_name).dashboard_url()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    return url
