"""Building the course: the site, the student and teacher editions, the pretrained bundle (needs the repository)."""
