"""What only development and demos use: the demo data set and the local mail catcher."""
