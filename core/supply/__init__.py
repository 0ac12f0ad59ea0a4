"""Water resources and village supply: intake users and meters, groundwater wells, water sources, village
supplies (models, registry tables, repository) and the drinking-water limits that apply to each supply."""
