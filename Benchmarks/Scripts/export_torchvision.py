#!/usr/bin/env python3
"""Converts a torchvision (or timm) ResNet's weights into a safetensors file that dml reads:
    dml train --network resnet50:weights=resnet50.safetensors,embedding=512 ...

    python3 export_torchvision.py --arch resnet50 --weights resnet50-11ad3fa6.pth --output resnet50.safetensors
    python3 export_torchvision.py --arch resnet18 --random --seed 0 --output resnet18-random.safetensors

--weights is a state dict saved by torch.save (torchvision's downloads are such files; a timm
ResNet's names are torchvision's), or a whole pickled model. Nothing is downloaded: pretrained
weights must come from you. --random writes torchvision's own random initialisation instead (for
trying the pipeline). The tensors keep torch's names, shapes and layouts (float32;
num_batches_tracked as int64); dml checks every name and shape and reports the head (fc) as new
when its shape differs from the network's embedding. Needs only torch and torchvision (Debian's
python3-torchvision): the safetensors format is a JSON header and the raw bytes."""
import argparse, json, struct
import torch, torchvision


def write_safetensors(tensors, path, metadata=None):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype.is_floating_point:
            t, dtype = t.float(), "F32"
        else:
            t, dtype = t.long(), "I64"
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dtype = {"F32": torch.float32, "I64": torch.int64}[e["dtype"]]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=dtype).reshape(e["shape"]).clone()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=["resnet18", "resnet34", "resnet50"])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--weights", help="a .pth state dict (or pickled model) of that architecture")
    g.add_argument("--random", action="store_true", help="torchvision's random initialisation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    model = getattr(torchvision.models, a.arch)()
    if a.weights:
        state = torch.load(a.weights, map_location="cpu")
        if isinstance(state, torch.nn.Module):
            state = state.state_dict()
        state = state.get("state_dict", state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise SystemExit(f"{a.weights} is not a torchvision {a.arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        torch.manual_seed(a.seed)
        model = getattr(torchvision.models, a.arch)()
    write_safetensors(model.state_dict(), a.output, {"format": "pt", "arch": a.arch})
    print(f"wrote {len(model.state_dict())} tensors of {a.arch} to {a.output}")


if __name__ == "__main__":
    main()
