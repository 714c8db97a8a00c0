worker = None
