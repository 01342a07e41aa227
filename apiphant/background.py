"""@seconds(N) tasks and the apiphant-background scheduler (being written)."""
