// The mask editor: paint where the defect is, one colour per anomaly type, and save L4V's mask PNG
// (white background, each type's exact hex colour) next to the image, plus its anomaly-mask-ref.
import { useEffect, useRef, useState } from "preact/hooks";
import { UpdateDatasetEntriesCommand } from "@aws-sdk/client-lookoutvision";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { lv, s3 } from "./api";
import { ANOMALY_COLOURS, changes, parseS3Uri, withMask, type Entry } from "./manifest";
import { snapToPalette } from "./palette";
import { useAction } from "./ui";

type Tool = "brush" | "eraser" | "polygon";
const UNDO_DEPTH = 30;

export function MaskEditor(props: { project: string; type: string; entry: Entry; imageUrl: string; onClose: (saved: boolean) => void }) {
  const { entry } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [tool, setTool] = useState<Tool>("brush");
  const [size, setSize] = useState(12);
  const [zoom, setZoom] = useState(1);
  const [types, setTypes] = useState(entry.anomalyTypes.length ? entry.anomalyTypes : ["defect"]);
  const [current, setCurrent] = useState(0);
  const [newType, setNewType] = useState("");
  const [polygon, setPolygon] = useState<[number, number][]>([]);
  const undo = useRef<ImageData[]>([]);
  const drawing = useRef(false);
  const [busy, run] = useAction();
  const colour = ANOMALY_COLOURS[current % ANOMALY_COLOURS.length];

  const ctx = () => canvas.current!.getContext("2d", { willReadFrequently: true })!;
  const snapshot = () => {
    const c = canvas.current!;
    undo.current = [...undo.current.slice(-UNDO_DEPTH + 1), ctx().getImageData(0, 0, c.width, c.height)];
  };
  const point = (e: PointerEvent): [number, number] => {
    const rect = canvas.current!.getBoundingClientRect();
    return [((e.clientX - rect.left) / rect.width) * canvas.current!.width, ((e.clientY - rect.top) / rect.height) * canvas.current!.height];
  };
  const last = useRef<[number, number] | null>(null);
  const dab = (x: number, y: number) => {
    const c = ctx();
    c.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
    c.strokeStyle = colour;
    c.lineWidth = size;
    c.lineCap = c.lineJoin = "round";
    const [fromX, fromY] = last.current ?? [x, y]; // a segment from the last point: no gaps when moving fast
    c.beginPath();
    c.moveTo(fromX, fromY);
    c.lineTo(x, y);
    c.stroke();
    last.current = [x, y];
  };

  useEffect(() => {
    const image = new Image();
    image.onload = () => {
      const c = canvas.current!;
      c.width = image.naturalWidth;
      c.height = image.naturalHeight;
      setZoom(Math.min(2, Math.floor((640 / image.naturalWidth) * 4) / 4)); // fit 640 px, small images larger
    };
    image.src = props.imageUrl;
  }, [props.imageUrl]);

  const down = (e: PointerEvent) => {
    const [x, y] = point(e);
    if (tool === "polygon") return setPolygon([...polygon, [x, y]]);
    snapshot();
    drawing.current = true;
    last.current = null;
    dab(x, y);
  };
  const move = (e: PointerEvent) => drawing.current && dab(...point(e));
  const closePolygon = () => {
    if (polygon.length < 3) return setPolygon([]);
    snapshot();
    const c = ctx();
    c.globalCompositeOperation = "source-over";
    c.fillStyle = colour;
    c.beginPath();
    polygon.forEach(([x, y], i) => (i ? c.lineTo(x, y) : c.moveTo(x, y)));
    c.closePath();
    c.fill();
    setPolygon([]);
  };
  const undoLast = () => {
    const last = undo.current.pop();
    if (last) ctx().putImageData(last, 0, 0);
  };

  const save = () =>
    run(async () => {
      const c = canvas.current!;
      const palette = types.map((_, i) => ANOMALY_COLOURS[i % ANOMALY_COLOURS.length]);
      const pixels = ctx().getImageData(0, 0, c.width, c.height);
      const used = snapToPalette(pixels.data, palette); // canvas edges are anti-aliased: L4V wants exact colours
      const out = document.createElement("canvas");
      out.width = c.width;
      out.height = c.height;
      out.getContext("2d")!.putImageData(pixels, 0, 0);
      const png = await new Promise<Blob>((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error("PNG encoding failed"))), "image/png"));
      const { bucket, key } = parseS3Uri(entry.sourceRef);
      const maskKey = key.replace(/(\.[^./]*)?$/, "_mask.png");
      await s3().send(new PutObjectCommand({ Bucket: bucket, Key: maskKey, Body: new Uint8Array(await png.arrayBuffer()), ContentType: "image/png" }));
      const typed = types.map((name, i) => ({ name, colour: palette[i] })).filter((_, i) => used[i]);
      if (typed.length === 0) throw new Error("The mask is empty: paint the defect first, or label the image normal.");
      const line = withMask(entry, `s3://${bucket}/${maskKey}`, typed);
      await lv().send(new UpdateDatasetEntriesCommand({ ProjectName: props.project, DatasetType: props.type, Changes: changes([line]) }));
      props.onClose(true);
    });

  return (
    <div class="modal" id="mask-editor">
      <div class="card">
        <h2>Mask for {entry.sourceRef.split("/").pop()}</h2>
        <div class="row toolbar">
          {(["brush", "eraser", "polygon"] as Tool[]).map((t) => (
            <button key={t} id={`tool-${t}`} class={tool === t ? "" : "secondary"} onClick={() => (setTool(t), setPolygon([]))}>{t}</button>
          ))}
          <label>size <input type="range" min="2" max="60" value={size} onInput={(e) => setSize(Number(e.currentTarget.value))} /></label>
          <label>zoom <input type="range" min="0.25" max="4" step="0.25" value={zoom} onInput={(e) => setZoom(Number(e.currentTarget.value))} /></label>
          {tool === "polygon" && <button id="close-polygon" disabled={polygon.length < 3} onClick={closePolygon}>Close polygon ({polygon.length})</button>}
          <button id="undo" class="secondary" onClick={undoLast}>Undo</button>
        </div>
        <div class="row">
          {types.map((t, i) => (
            <button key={t} class={`type-chip ${i === current ? "active" : ""}`} onClick={() => setCurrent(i)}>
              <span class="swatch" style={{ background: ANOMALY_COLOURS[i % ANOMALY_COLOURS.length] }} /> {t}
            </button>
          ))}
          <input placeholder="new anomaly type" value={newType} onInput={(e) => setNewType(e.currentTarget.value)} />
          <button class="secondary" disabled={!newType.trim() || types.includes(newType.trim())} onClick={() => (setTypes([...types, newType.trim()]), setCurrent(types.length), setNewType(""))}>Add type</button>
        </div>
        <div class="paint" style={{ width: `${(canvas.current?.width ?? 640) * zoom}px` }}>
          <img src={props.imageUrl} alt="" draggable={false} />
          <canvas ref={canvas} id="mask-canvas" onPointerDown={down} onPointerMove={move} onPointerUp={() => (drawing.current = false)} onPointerLeave={() => (drawing.current = false)} />
          {polygon.length > 0 && (
            <svg viewBox={`0 0 ${canvas.current?.width ?? 1} ${canvas.current?.height ?? 1}`}>
              <polyline points={polygon.map((p) => p.join(",")).join(" ")} fill="none" stroke={colour} stroke-width={2 / zoom} />
            </svg>
          )}
        </div>
        <div class="row">
          <button id="save-mask" disabled={busy} onClick={save}>Save mask</button>
          <button class="secondary" onClick={() => props.onClose(false)}>Cancel</button>
        </div>
      </div>
    </div>
  );
}
