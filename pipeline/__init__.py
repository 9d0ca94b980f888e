"""The glue around the method (``lzn``): files, Ray, MLflow, DVC, WebDataset.

Sub-packages line up with the DVC stage groups; a few modules at the top are shared by all of them.
Imports only point down this list (``tests/test_layout.py`` checks it)::

    params.py     the typed, validated params.yaml (the only reader of it); the experiment names
    errors.py     the UserError family: the only errors a stage prints as one line
    paths.py      Layout: the one layout of the project's folders
    io.py         the one atomic writer (files, folders, JSON) and sha256
    tracking.py   all of MLflow: the store URI, the one client, runs, metrics, artifacts
    cluster.py    starting or joining Ray (local, RAY_ADDRESS), resource checks
    configs.py    applying a paper-scale configs/*.yaml onto params.yaml
    data/         stage shard: sources -> WebDataset shards + manifest; the readers and loaders
    build.py      the modules and the objective of an experiment from Params
    artifacts.py  the exported-model format models/<experiment>/seed_<s>/
    evaluate/     stages refnet, extract, probe, classify, generate, fid
    train/        stage train: the Ray Train driver, the worker loop, state, online evaluation
    sweep/        stage sweep: Ray Tune over the params
    report/       stage report: merged metrics, the paper's tables, the zone plot (reads JSON only)

The script of each stage is ``stages/<stage>.py``; the method itself is ``lzn/``.
"""
