"""Data: from the Kaggle layout on disk to batches.

source.py resolves a run's data folder and opens its labelled images once (TrainingData),
archives.py reads the download as it ships (cifar-10.zip, train.7z, test.7z) and layout.py makes
the Kaggle layout from it once, kaggle.py reads and checks the layout, images.py checks and
decodes files, split.py makes the seeded train/valid split as a linked tree, transforms.py and
folder.py are the book's per-image pipeline (ImageFolderDataset + DataLoader), decoded.py the
decode-once cache, batches.py and augment.py the whole-batch loaders over it, demo.py the offline
demo dataset.
Imports: MXNet, numpy, Pillow, pandas, libarchive (lazily), and config/errors/atomic; nothing of
models, training or runs.
"""
