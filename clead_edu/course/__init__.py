"""Running the course for a graded class: the points table (`points.csv`, read by `points.py`)
and the grading command `python -m clead_edu grade SUBMISSIONS... --out DIR` (`grade.py`)."""
