"""The data stage and everything that reads its output: raw sources -> WebDataset shards -> batches.

Modules (import the one you need; this package imports nothing, so ``import pipeline.data.X``
stays as light as ``X``):

=====================  ===========================================================================
``sources/``           the raw sources (``shard.source``): ``__init__`` (the registry, ``open_source``),
                       ``base`` (``Source``, ``Sample``, ``SourceInfo``, in-memory ``ArraySource``),
                       ``digits``, ``cifar10`` (restricted unpickler), ``imagefolder`` (resize + crop)
``shards.py``          writing a source as deterministic tar shards + manifest, atomically (stage ``shard``)
``manifest.py``        ``manifest.json``: its format, writing it, and the one reader ``load_manifest``;
                       per-split shard lists with size and sha256 checks
``tar.py``             the checked in-memory tar reader and the safe member decoders (never unpickles)
``partition.py``       which rank and loader worker reads which shard; seeded shard and sample orders
``loaders.py``         ``train_loader`` (endless, per-rank epochs), ``eval_loader`` (one exact pass,
                       count-checked), ``read_split`` (a whole split in memory)
``images.py``          the one uint8 <-> float [-1, 1] conversion pair (``from_uint8``, ``to_uint8``)
``augment.py``         ``augment_kwargs``: the SimCLR augmentation config as ``lzn.augment`` arguments
=====================  ===========================================================================

User-facing errors (a bad source file, a missing or damaged shard) are
:class:`pipeline.errors.DataError`, whose message names the file and the command to rerun.
"""
