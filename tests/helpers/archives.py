"""Kaggle downloads packed in the tests, as the competition ships them, from a laid-out folder."""
import os
import zipfile

import libarchive


def pack_7z(path, members):
    """Write 7z archive `path` holding `members`: {name inside the archive: bytes}."""
    with libarchive.file_writer(str(path), "7zip") as archive:
        for name, data in members.items():
            archive.add_file_from_memory(name, len(data), data)


def folder_members(layout, part):
    folder = os.path.join(layout, part)
    return {f"{part}/{name}": open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def pack_download(layout, out, kind="zip"):
    """The Kaggle download of `layout`: cifar-10.zip (kind "zip") or a folder with train.7z,
    test.7z and the CSV files (kind "7z"). Returns the path to pass as --data-dir."""
    os.makedirs(out, exist_ok=True)
    for part in ("train", "test"):
        pack_7z(os.path.join(out, f"{part}.7z"), folder_members(layout, part))
    csvs = [n for n in ("trainLabels.csv", "sampleSubmission.csv") if os.path.exists(os.path.join(layout, n))]
    if kind == "7z":
        for name in csvs:
            with open(os.path.join(layout, name), "rb") as src, open(os.path.join(out, name), "wb") as dst:
                dst.write(src.read())
        return str(out)
    zipped = os.path.join(out, "cifar-10.zip")
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("train.7z", "test.7z"):
            archive.write(os.path.join(out, name), name)
            os.remove(os.path.join(out, name))
        for name in csvs:
            archive.write(os.path.join(layout, name), name)
    return zipped
