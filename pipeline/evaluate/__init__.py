"""The evaluation stages: each reads exported models (and shards or features) and writes a report.

Modules (stage -> module):

- ``seeds.py``        shared by all: the exported models of every seed (``load_seed_models``), the
  per-seed report layout and seed means (``build_report``), logging into a model's MLflow run, progress bars
- ``refnet.py``       stage ``refnet``: the digits reference CNN (the toy feature network of FID/IS/P-R)
- ``feature_nets.py`` the feature networks behind FID, IS, precision/recall (reference CNN, Inception-v3)
- ``extract.py``      stage ``extract``: backbone, anchor and latent features to Parquet
- ``probe.py``        stage ``probe``: linear probes on the extracted features
- ``classify.py``     stage ``classify``: the reverse label flow (``label_flow_accuracy``) and the
  supervised baseline
- ``generate.py``     stage ``generate``: samples of the generative experiments (RK45 and Euler)
- ``fid.py``          stage ``fid``: FID, IS, precision/recall, reconstruction error
"""
