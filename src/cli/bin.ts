#!/usr/bin/env node
/**
 * The `modelpress` executable (dist/cli/main.js once bundled): turns the compile cache on for the
 * bundle's chunks, then loads the command line, so every chunk it loads goes through the cache.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableCompileCache } from './compile-cache.ts';

enableCompileCache(dirname(fileURLToPath(import.meta.url)));
void import('./main.ts');
