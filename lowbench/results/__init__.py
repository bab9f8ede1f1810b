"""Results: the metric catalogue (``columns``), the record format (``records``: schema,
validation, atomic writes, tolerant reading), where a record's inputs came from
(``provenance``), asv ingestion (``asv``) and the one table of every result (``table``: rows,
their key, loading folders of records and asv results)."""
