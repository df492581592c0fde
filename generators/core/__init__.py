"""The pure generator core: no Django imports. Takes DataFrames and schemas, returns DataFrames."""
