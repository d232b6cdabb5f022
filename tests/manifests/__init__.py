"""Generated manifests and their startup chain (a package, so test module names stay unique)."""
