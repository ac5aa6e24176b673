// The package's types live in types/index.d.ts but Node ESM needs the module file's path;
// re-export those types under the path we import.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect/types/index.js';
}
