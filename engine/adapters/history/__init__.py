"""History: raw bar files → cleaned, aligned day curves (Spark via RayDP) → Ray object store."""
