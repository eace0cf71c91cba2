//! Distribution-clause rewriting of dumps.
