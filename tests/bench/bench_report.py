def finish(b):
    for k, v in b.r.items():
        print(k, v)
