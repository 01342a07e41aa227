"""myproduct: an apiphant product, served by `apiphant myproduct HOST:PORT`."""
