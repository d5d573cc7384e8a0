"""python/examples/parallel-virtual-datasets.ipynb, the seed notebook's workflow rewritten with the
package, executed as a notebook (nbclient, a real IPython kernel) on a local WRF-like archive:
a Dask LocalCluster scans it in shards, the manifest is mounted and read with xarray, and the
notebook's own cells check the answer against xarray on the original files and through the
kerchunk references it wrote."""
import os

import nbformat
from nbclient import NotebookClient

from conftest import REPO, make_wrf_sample, require_fuse, zarrmount_mounts

NOTEBOOK = os.path.join(REPO, "python", "examples", "parallel-virtual-datasets.ipynb")


def test_the_example_notebook_runs_and_agrees_with_the_original_files(tmp_path, monkeypatch):
    require_fuse()
    archive = make_wrf_sample(tmp_path / "archive", days=4)
    monkeypatch.setenv("ZARRMOUNT_EXAMPLE_SOURCES", os.path.join(os.path.dirname(archive[0]), "*.nc"))
    monkeypatch.setenv("ZARRMOUNT_EXAMPLE_WORKDIR", str(tmp_path / "work"))
    before = zarrmount_mounts()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "the notebook is kept without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert "scanned into wrf.zmf" in printed, printed
    assert "T2 over 4 days: mean" in printed, printed
    assert "identical to xarray on the 4 original files" in printed, printed
    assert "identical through the kerchunk references" in printed, printed
    assert os.path.getsize(tmp_path / "work" / "wrf.zmf") > 0
    assert zarrmount_mounts() == before, "closing the dataset unmounted it"
