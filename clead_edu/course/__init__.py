"""The course around the lessons, apart from the runtime (`import clead_edu` imports none of it):
building the site, the student and teacher editions and the pretrained bundle (these need the
repository), and running a graded class: the points table (`points.csv`, read by `points.py`)
and the grading command `python -m clead_edu grade SUBMISSIONS... --out DIR` (`grade.py`)."""
