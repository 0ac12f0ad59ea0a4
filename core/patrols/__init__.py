"""River chiefs (河长制): rivers and their segments, chiefs, patrols with GPS tracks, issues, compliance.

Modules: ``models`` (pydantic domain), ``geometry`` (numpy track and coverage maths), ``validity`` (does a
patrol count), ``compliance`` (required vs. valid patrols, issue statistics), ``tables`` (SQLAlchemy Core
tables on the registry's metadata), ``repo`` (PatrolRepo), ``photos`` (upload checks and storage).

Deliberately no imports here: ``core.registry`` imports ``core.patrols.tables`` to register the tables, and
``core.patrols.tables`` imports ``core.registry.tables``; an import here would close that circle.
"""
