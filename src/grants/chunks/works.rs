//! The works array in chunks: each work is checked and batched by the worker that parsed it,
//! and the batch indexed in the chunk's turn.

use serde::de::SeqAccess;
use std::sync::Arc;

use super::{Chunk, Entries, ReadEntries, parse_chunk};
use crate::grants::indexer::{IndexFailed, Job, index_batch};
use crate::grants::json_error::JsonError;
use crate::grants::validate::{Orgs, Report};
use crate::grants::work_batch::WorkBatch;
use crate::grants::work_entry::{WorkFields, WorkScratch};
use crate::grants::works::WorkIndex;

/// `(works, reference bytes, chunk bytes)` of the first chunk → the works and reference bytes
/// to reserve room for in the index.
pub(in crate::grants) type Estimate =
    dyn Fn(usize, usize, usize) -> Option<(usize, usize)> + Send + Sync;

pub(in crate::grants) struct Works {
    pub(in crate::grants) orgs: Arc<Orgs>,
    pub(in crate::grants) estimate: Box<Estimate>,
}

#[derive(Default)]
pub(in crate::grants) struct Scratch {
    fields: WorkScratch,
    batch: WorkBatch,
    /// The problems of the batch's works, by position.
    deferred: Vec<(usize, Report)>,
}

impl Entries for Works {
    const NAME: &'static str = "works";
    type Scratch = Scratch;
    type Built = WorkIndex;

    fn parse(&self, chunk: &Chunk, scratch: &mut Scratch) -> Result<usize, JsonError> {
        let mut read = Read {
            first: chunk.first,
            orgs: &self.orgs,
            scratch,
            count: 0,
        };
        parse_chunk(chunk, Self::NAME, &mut read)?;
        Ok(read.count)
    }

    fn build(
        &self,
        chunk: &Chunk,
        scratch: &mut Scratch,
        index: &mut WorkIndex,
    ) -> Result<Report, IndexFailed> {
        let reserve = if chunk.seq == 0 {
            let batch = &scratch.batch;
            (self.estimate)(batch.len(), batch.ref_bytes(), chunk.bytes.len())
        } else {
            None
        };
        let mut job = Job {
            batch: std::mem::take(&mut scratch.batch),
            deferred: std::mem::take(&mut scratch.deferred),
            reserve,
        };
        let report = index_batch(index, &mut job);
        scratch.batch = job.batch;
        Ok(report?)
    }
}

/// Reads a chunk's works, each checked and batched as it is read.
struct Read<'a> {
    first: usize,
    orgs: &'a Orgs,
    scratch: &'a mut Scratch,
    count: usize,
}

impl ReadEntries for Read<'_> {
    fn read<'de, S: SeqAccess<'de>>(&mut self, mut seq: S) -> Result<(), S::Error> {
        let Scratch {
            fields,
            batch,
            deferred,
        } = &mut *self.scratch;
        while seq.next_element_seed(WorkFields(fields))?.is_some() {
            batch.take(
                self.first + self.count,
                &fields.doc(),
                Some(self.orgs),
                deferred,
            );
            self.count += 1;
        }
        Ok(())
    }
}
