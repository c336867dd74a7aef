/**
 * Where an image's bytes are inside an archive the dataset names, so that an item is read again
 * from its shard by position, without unpacking: a tar member by its data's byte offset and
 * size, a Parquet row by its row group and row.
 *
 * @module
 */

/** A member of a WebDataset tar shard: `size` bytes at byte `offset` of `file`. */
export interface TarMember {
  kind: "tar";
  /** Absolute path of the shard. */
  file: string;
  /** Byte offset of the member's data (after its header). */
  offset: number;
  size: number;
}

/** A row of a Parquet file: row `row` (of the file) in row group `row_group`. */
export interface ParquetRow {
  kind: "parquet";
  /** Absolute path of the file. */
  file: string;
  row_group: number;
  row: number;
}

/** A tar member or a Parquet row. */
export type ArchiveMember = TarMember | ParquetRow;
