"""Importers of the bureau's own files: stations (CSV), rivers (GeoJSON), river chiefs (CSV), and the water
resources and village supplies (CSV: intake users, meters, wells, water sources, village supplies).

Each file is validated whole before anything is stored: every problem is collected with the row (or feature) it
is in, and one ``InvalidFile`` lists them all, so an operator fixes a file in one pass. Row numbers count the
header as row 1, as a spreadsheet shows them. File formats: docs/data-model.md, "Import files".
"""

from core.importers.chiefs import CHIEF_FIELDS, chief_id_for, load_chiefs_csv, write_chiefs_csv
from core.importers.problems import InvalidFile
from core.importers.rivers import load_rivers_geojson, rivers_to_geojson
from core.importers.segments import Village, split_river, villages_of
from core.importers.stations import STATION_FIELDS, load_stations_csv, write_stations_csv
from core.importers.supply import (INTAKE_USER_FIELDS, METER_FIELDS, SOURCE_FIELDS, SUPPLY_FIELDS, WELL_FIELDS,
                                   load_intake_users_csv, load_meters_csv, load_sources_csv, load_supplies_csv,
                                   load_wells_csv, write_supply_csv)

__all__ = ["CHIEF_FIELDS", "INTAKE_USER_FIELDS", "METER_FIELDS", "SOURCE_FIELDS", "STATION_FIELDS", "SUPPLY_FIELDS",
           "WELL_FIELDS", "load_intake_users_csv", "load_meters_csv", "load_sources_csv", "load_supplies_csv",
           "load_wells_csv", "write_supply_csv", "InvalidFile", "Village", "chief_id_for", "load_chiefs_csv",
           "load_rivers_geojson", "load_stations_csv", "rivers_to_geojson", "split_river", "villages_of",
           "write_chiefs_csv", "write_stations_csv"]
