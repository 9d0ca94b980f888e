"""The ``report`` stage (``stages/report.py``): the evaluation reports merged, the paper's tables regenerated.

Modules, in the order the stage uses them:

- :mod:`~pipeline.report.merge`: merges the evaluation stages' partial reports
  ``reports/{probe,classify,fid}/<name>.json`` into one flat ``reports/<name>.json`` per experiment
  (the DVC metrics).
- :mod:`~pipeline.report.inputs`: reads and validates what the tables are built from: the
  ``reports/<name>.json`` files, the published numbers ``paper_results.yaml`` and
  ``reports/sweep.json``.
- :mod:`~pipeline.report.compare`: the metric columns (:class:`~pipeline.report.compare.Metric`),
  this run's cells in display units, directions and the verdict against the paper's.
- :mod:`~pipeline.report.tables`: the paper's Tables 1-4 as data; :func:`build_paper_tables` and
  :func:`write_paper_tables` (``reports/paper_tables.md`` and ``.json``), the stage's entry point.
- :mod:`~pipeline.report.claims`: the paper's headline claims checked on those tables.
- :mod:`~pipeline.report.markdown`: the tables and claims rendered as ``paper_tables.md``.
- :mod:`~pipeline.report.zones`: the latent-zone picture of the label flow (``reports/zones.png``).

``paper_results.yaml`` (beside these modules) holds the published numbers.
"""
