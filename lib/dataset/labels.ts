/**
 * The FFHQ-Aging labels CSV, parsed strictly: the exact header, known age groups and genders,
 * confidences in [0, 1] (or -1 where no face was found), one row per image.
 *
 * Byte-order marks and CRLF line ends are accepted (spreadsheet exports add both); quoted
 * fields may contain commas; blank lines are skipped. Everything else that deviates is an error
 * naming the file, the line and the column, with the expected and the found value.
 *
 * @module
 */

import { parse } from "csv-parse";

/** The columns of a labels row that are labels, in the CSV's order (its id column aside). */
export const LABEL_FIELDS = [
  "age_group",
  "age_group_confidence",
  "gender",
  "gender_confidence",
  "head_pitch",
  "head_roll",
  "head_yaw",
  "left_eye_occluded",
  "right_eye_occluded",
  "glasses",
] as const;

/** The exact header of the labels CSV. */
export const LABEL_COLUMNS = ["image_number", ...LABEL_FIELDS] as const;

/**
 * The labels row an image id joins on: numeric ids without their leading zeros (FFHQ's image
 * "00017" is row 17 of the labels CSV), any other id as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(labelRowId("00017"), "17");
 * assert.equal(labelRowId("train/2092"), "train/2092");
 * ```
 */
export function labelRowId(id: string): string {
  return /^\d+$/.test(id) ? String(Number(id)) : id;
}

/** The ten age groups of FFHQ-Aging. */
export const AGE_GROUPS = [
  "0-2",
  "3-6",
  "7-9",
  "10-14",
  "15-19",
  "20-29",
  "30-39",
  "40-49",
  "50-69",
  "70-120",
] as const;

/** One row of the labels CSV. */
export interface FaceLabel {
  /** `image_number` as a decimal string without leading zeros ("17"). */
  id: string;
  /** `null` where no face was found (confidence -1 and an empty or "-1" value). */
  age_group: string | null;
  age_group_confidence: number;
  gender: "male" | "female" | null;
  gender_confidence: number;
  head_pitch: number;
  head_roll: number;
  head_yaw: number;
  left_eye_occluded: number;
  right_eye_occluded: number;
  glasses: string;
  /** 1-based line of the row in the file. */
  line: number;
}

/** Raised for a labels file that does not follow the format; names file, line and column. */
export class LabelsError extends Error {
  override readonly name = "LabelsError";
}

/**
 * Reads and validates a labels CSV file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const csv = "image_number,age_group,age_group_confidence,gender,gender_confidence," +
 *     "head_pitch,head_roll,head_yaw,left_eye_occluded,right_eye_occluded,glasses\n" +
 *     "00017,20-29,0.9,female,0.99,1.5,-2,10,0.1,0.05,NoGlasses\n";
 *   await Deno.writeTextFile(`${dir}/labels.csv`, csv);
 *   const labels = await readLabelsCsv(`${dir}/labels.csv`);
 *   assert.deepEqual([labels[0].id, labels[0].age_group, labels[0].gender], ["17", "20-29", "female"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readLabelsCsv(path: string): Promise<FaceLabel[]> {
  return parseLabelsCsv(await Deno.readFile(path), path);
}

/**
 * Parses and validates labels CSV text or bytes; `file` names the source in messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const csv = "image_number,age_group,age_group_confidence,gender,gender_confidence," +
 *   "head_pitch,head_roll,head_yaw,left_eye_occluded,right_eye_occluded,glasses\n" +
 *   "00017,20-29,0.9,female,0.99,1.5,-2,10,0.1,0.05,NoGlasses\n";
 * const labels = await parseLabelsCsv(csv, "labels.csv");
 * assert.equal(labels[0].line, 2);
 * await assert.rejects(
 *   parseLabelsCsv(csv.replace("0.99", "high"), "labels.csv"),
 *   /labels\.csv:2: column gender_confidence/,
 * );
 * ```
 */
export async function parseLabelsCsv(
  input: string | Uint8Array,
  file: string,
): Promise<FaceLabel[]> {
  const text = typeof input === "string" ? input : new TextDecoder().decode(input);
  const parser = parse(text, {
    bom: true,
    info: true,
    skip_empty_lines: true,
    relax_column_count: true,
  });
  const labels: FaceLabel[] = [];
  const seen = new Map<string, number>();
  let header = true;
  try {
    for await (
      const { record, info } of parser as AsyncIterable<
        { record: string[]; info: { lines: number } }
      >
    ) {
      const line = info.lines;
      if (header) {
        const found = record.join(",");
        if (found !== LABEL_COLUMNS.join(",")) {
          throw new LabelsError(
            `${file}:${line}: wrong header: expected "${
              LABEL_COLUMNS.join(",")
            }", found "${found}"`,
          );
        }
        header = false;
        continue;
      }
      if (record.length !== LABEL_COLUMNS.length) {
        throw new LabelsError(
          `${file}:${line}: expected ${LABEL_COLUMNS.length} columns, found ${record.length}`,
        );
      }
      const label = toLabel(record, file, line);
      const first = seen.get(label.id);
      if (first !== undefined) {
        throw new LabelsError(
          `${file}:${line}: duplicate image_number ${label.id} (first at line ${first})`,
        );
      }
      seen.set(label.id, line);
      labels.push(label);
    }
  } catch (error) {
    if (error instanceof LabelsError) throw error;
    const e = error as Error & { code?: string; lines?: number };
    if (e.code?.startsWith("CSV_")) {
      throw new LabelsError(`${file}:${e.lines ?? "?"}: malformed CSV: ${e.message}`, {
        cause: error,
      });
    }
    throw error;
  }
  if (header) throw new LabelsError(`${file}: empty, expected the header line`);
  return labels;
}

function toLabel(record: string[], file: string, line: number): FaceLabel {
  const value = (col: (typeof LABEL_COLUMNS)[number]) => record[LABEL_COLUMNS.indexOf(col)];
  const bad = (col: string, want: string, found: string): never => {
    throw new LabelsError(`${file}:${line}: column ${col}: expected ${want}, found "${found}"`);
  };
  const number = (col: (typeof LABEL_COLUMNS)[number]) => {
    const v = value(col).trim();
    const n = Number(v);
    if (v === "" || !Number.isFinite(n)) bad(col, "a number", value(col));
    return n;
  };
  const confidence = (col: (typeof LABEL_COLUMNS)[number]) => {
    const v = value(col).trim();
    const n = v === "" ? NaN : Number(v);
    if (n !== -1 && !(n >= 0 && n <= 1)) {
      bad(col, "a number in [0, 1] (or -1 where no face was found)", value(col));
    }
    return n;
  };
  const idText = value("image_number").trim();
  if (!/^\d+$/.test(idText)) bad("image_number", "a non-negative integer", value("image_number"));
  const ageConf = confidence("age_group_confidence");
  const genderConf = confidence("gender_confidence");
  const noFace = (v: string) => v === "" || v === "-1";
  const ageText = value("age_group").trim();
  let age: string | null = ageText;
  if (!(AGE_GROUPS as readonly string[]).includes(ageText)) {
    if (ageConf === -1 && noFace(ageText)) age = null;
    else bad("age_group", `one of ${AGE_GROUPS.join(", ")}`, value("age_group"));
  }
  const genderText = value("gender").trim();
  let gender: "male" | "female" | null = null;
  if (genderText === "male" || genderText === "female") gender = genderText;
  else if (!(genderConf === -1 && noFace(genderText))) {
    bad("gender", `"male" or "female"`, value("gender"));
  }
  const glasses = value("glasses").trim();
  if (glasses === "") bad("glasses", "a value such as NoGlasses", value("glasses"));
  return {
    id: labelRowId(idText),
    age_group: age,
    age_group_confidence: ageConf,
    gender,
    gender_confidence: genderConf,
    head_pitch: number("head_pitch"),
    head_roll: number("head_roll"),
    head_yaw: number("head_yaw"),
    left_eye_occluded: number("left_eye_occluded"),
    right_eye_occluded: number("right_eye_occluded"),
    glasses,
    line,
  };
}
