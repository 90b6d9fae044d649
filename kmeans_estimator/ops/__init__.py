"""The maths of k-means as pure functions: tensors in, tensors out.

`distances` (point-to-center distances and per-cluster statistics, in
chunks), `carried` (exact sums carried from step to step), `bounds`
(Hamerly's bounds), `updates` (center update rules), `initializers`
(random, k-means++, k-mc2, k-means||) and `numerics` (safe helpers). Nothing
here holds a variable or reads a file.
"""
